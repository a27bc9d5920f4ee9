"""The denoising loop on the tiny model: faithful to diffusers, seeded per image, and blind to sampler classes."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from generation.errors import ParameterError
from generation.loop import initial_latents, sample_batch
from generation.prompts import build_prompts
from generation.samplers import CONCEPT, SUPERCLASS, UNCOND, GuidanceOutput, RunHooks, Sampler
from generation.samplers.core import guidance_weight, guided
from generation.seeds import seed_for
from tests.generation.conftest import STEPS, TEMPLATE

ATOL = 1e-4  # float32 round-off: batch composition changes kernel summation order
RTOL = 1e-4


def test_base_matches_plain_diffusers_pipeline(tiny_pipeline, run_sampler):
    seeds = [seed_for(TEMPLATE, i) for i in (0, 1)]
    latents = initial_latents(seeds, (8, 8))
    reference = tiny_pipeline(
        ["a sks dog in the snow"] * 2,
        latents=latents,
        guidance_scale=7.0,
        num_inference_steps=STEPS,
        output_type="latent",
    ).images
    ours = run_sampler("base", {"w": 7.0}, seed_indices=(0, 1))
    torch.testing.assert_close(ours.latents, reference, atol=ATOL, rtol=RTOL)


def test_same_template_and_index_give_the_same_start_for_any_batch():
    seeds = [seed_for(TEMPLATE, i) for i in range(3)]
    assert torch.equal(initial_latents(seeds, (8, 8))[1], initial_latents(seeds[1:2], (8, 8))[0])
    assert not torch.equal(initial_latents(seeds[:1], (8, 8)), initial_latents(seeds[1:2], (8, 8)))


@pytest.mark.parametrize("steps", [0, 1001, 2.0])
def test_a_bad_step_count_is_refused_before_any_model_call(tiny_pipeline, steps):
    sampler = LookAheadSampler()
    with pytest.raises(ParameterError, match=r"steps: expected an integer in \[1, 1000\]"):
        sample_batch(tiny_pipeline, sampler, build_prompts(TEMPLATE, "sks", "dog"), [1], steps=steps)
    assert sampler.hooks == []


# ---- a sampler the loop has never heard of


@dataclass(frozen=True)
class LookAheadParams:
    w: float = guidance_weight(7.0, "guidance scale on the concept prompt")


class LookAheadSampler(Sampler):
    """Base guidance, but odd steps also evaluate the superclass branch (unused) in a shuffled order, step 0
    makes one extra concept call before the main call, and a hook hands ``combine`` the step number as its mask."""

    name = "look-ahead"
    Params = LookAheadParams
    summary = equation = cost = "for the loop's tests only"
    sweep_preset = [{}]

    def __init__(self, params=None):
        super().__init__(params)
        self.hooks = []
        self.masks_seen = []

    def branches(self, step):
        return (UNCOND, CONCEPT) if step % 2 == 0 else (SUPERCLASS, CONCEPT, UNCOND)

    def extra_evaluations(self, step):
        return 1 if step == 0 else 0

    def run_hooks(self, run):
        self.hooks.append(LayoutRecorder(run))
        return self.hooks[-1]

    def combine(self, step, preds, mask=None):
        self.masks_seen.append(mask)
        return GuidanceOutput(guided(preds[UNCOND], preds[CONCEPT], self.params.w), preds)


class LayoutRecorder(RunHooks):
    def __init__(self, run):
        self.run = run
        self.layouts = []
        self.extra_predictions = []

    def before_step(self, step, timestep):
        if step == 0:
            self.extra_predictions.append(self.run.call_unet((CONCEPT,), timestep)[CONCEPT])

    def before_call(self, step, branches):
        self.layouts.append((branches, self.run.rows(branches, CONCEPT)))

    def mask(self, step):
        return step


def test_a_new_sampler_runs_on_the_loop_through_its_declarations(tiny_pipeline, run_sampler):
    sampler = LookAheadSampler()
    seeds = [seed_for(TEMPLATE, index) for index in (0, 1)]
    ours = sample_batch(tiny_pipeline, sampler, build_prompts(TEMPLATE, "sks", "dog"), seeds, steps=STEPS)
    [hooks] = sampler.hooks
    assert ours.unet_evaluations == sampler.evaluations_per_image(STEPS) == 2 + 3 + 2 + 3 + 1
    assert hooks.layouts[0] == ((UNCOND, CONCEPT), slice(2, 4))
    assert hooks.layouts[1] == ((SUPERCLASS, CONCEPT, UNCOND), slice(2, 4))
    assert len(hooks.extra_predictions) == 1 and hooks.extra_predictions[0].shape == (2, 4, 8, 8)
    assert sampler.masks_seen == list(range(STEPS))
    # The extra call and the unused branch change nothing: the guidance is Base's.
    torch.testing.assert_close(ours.latents, run_sampler("base", {"w": 7.0}).latents, atol=ATOL, rtol=RTOL)
