"""The one denoising loop every sampler runs on.

Per step: let the sampler's run hooks make any extra model calls (ProFusion's fusion), ask the sampler
which branches it needs, concatenate exactly those inputs along the batch axis, make one UNet call,
split the output by branch, let the sampler combine, take a DDIM step (eta = 0) on every trajectory
the step produced a prediction for. Attention processors (Masked, Photoswap) are the hooks' business:
the loop installs them for the run and tells them each call's batch layout, without knowing which
sampler it runs (``generation.samplers.core`` describes the protocol). Initial noise is drawn per image
on a CPU generator seeded by ``generation.seeds.seed_for``, so an image does not depend on its batch,
its batch size or the device.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from generation.prompts import PromptSet, token_count
from generation.samplers.core import BRANCH_INPUTS, CONCEPT, MAIN, SUPERCLASS, UNCOND, Sampler
from generation.steps import check_steps

logger = logging.getLogger(__name__)

LATENT_CHANNELS = 4

# Masked and Photoswap swap the UNet's attention processors for a run, so two threads must not run
# on the same (cached, shared) pipeline at once.
_RUN_LOCKS: dict[int, threading.Lock] = {}
_RUN_LOCKS_GUARD = threading.Lock()


def _run_lock(pipeline) -> threading.Lock:
    with _RUN_LOCKS_GUARD:
        return _RUN_LOCKS.setdefault(id(pipeline.unet), threading.Lock())


@dataclass
class BatchResult:
    """What one batch of images produced; counts are per image."""

    images: list
    latents: Any
    unet_evaluations: int
    masks: list = field(default_factory=list)
    prompt_truncated: bool = False


def initial_latents(seeds: Sequence[int], latent_size: tuple[int, int]):
    """Standard normal latents, one CPU generator per seed, float32, shape (N, 4, h, w)."""
    import torch

    generators = [torch.Generator("cpu").manual_seed(seed) for seed in seeds]
    return torch.cat([torch.randn((1, LATENT_CHANNELS, *latent_size), generator=g) for g in generators])


def encode_prompts(pipeline, prompts: PromptSet) -> tuple[dict[str, Any], bool]:
    """Text embeddings (1, tokens, width) for "uncond", "concept" and "superclass", and whether any
    prompt was longer than the tokenizer allows (it is then truncated, and logged)."""
    import torch

    tokenizer, encoder = pipeline.tokenizer, pipeline.text_encoder
    limit = tokenizer.model_max_length
    texts = {UNCOND: prompts.uncond, CONCEPT: prompts.concept, SUPERCLASS: prompts.superclass}
    truncated = False
    for name, text in texts.items():
        count = token_count(tokenizer, text)
        if count > limit:
            truncated = True
            logger.warning("%s prompt %r has %d tokens; truncated to %d", name, text, count, limit)
    ids = tokenizer(list(texts.values()), padding="max_length", max_length=limit, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = encoder(ids.input_ids.to(encoder.device))[0]
    return {name: hidden[i : i + 1] for i, name in enumerate(texts)}, truncated


class _Run:
    """State of one batch: the trajectories, embeddings and the scheduler copy (a ``RunContext``)."""

    def __init__(self, pipeline, sampler: Sampler, prompts: PromptSet, seeds: Sequence[int], steps: int):
        from diffusers import DDIMScheduler

        self.unet, self.tokenizer, self.prompts, self.seeds = pipeline.unet, pipeline.tokenizer, prompts, list(seeds)
        self.device, self.dtype = self.unet.device, self.unet.dtype
        self.scheduler = DDIMScheduler.from_config(pipeline.scheduler.config)
        self.scheduler.set_timesteps(steps, device=self.device)
        self.steps = steps
        size = self.unet.config.sample_size
        self.latent_size = (size, size) if isinstance(size, int) else tuple(size)
        self.embeds, self.truncated = encode_prompts(pipeline, prompts)
        latents = initial_latents(self.seeds, self.latent_size).to(self.device, self.dtype)
        latents = latents * self.scheduler.init_noise_sigma
        # Every trajectory starts from the same noise.
        self.trajectories = {name: latents if name == MAIN else latents.clone() for name in sampler.trajectories}
        self.evaluations = 0

    @property
    def batch(self) -> int:
        return len(self.seeds)

    @property
    def prediction_type(self) -> str:
        return self.scheduler.config.prediction_type

    def rows(self, branches: tuple[str, ...], branch: str) -> slice:
        index = branches.index(branch)
        return slice(index * self.batch, (index + 1) * self.batch)

    def call_unet(self, branches: tuple[str, ...], timestep) -> dict[str, Any]:
        """One UNet call over the given branches; returns each branch's noise prediction."""
        import torch

        inputs = [self.trajectories[BRANCH_INPUTS[b][0]] for b in branches]
        contexts = [self.embeds[BRANCH_INPUTS[b][1]].expand(self.batch, -1, -1) for b in branches]
        latents = self.scheduler.scale_model_input(torch.cat(inputs), timestep)
        output = self.unet(latents, timestep, encoder_hidden_states=torch.cat(contexts)).sample
        self.evaluations += len(branches)
        return dict(zip(branches, output.chunk(len(branches)), strict=True))

    def alphas(self, timestep) -> tuple[float, float]:
        scheduler = self.scheduler
        t = int(timestep)
        previous = t - scheduler.config.num_train_timesteps // self.steps
        alpha_t = float(scheduler.alphas_cumprod[t])
        alpha_prev = scheduler.alphas_cumprod[previous] if previous >= 0 else scheduler.final_alpha_cumprod
        return alpha_t, float(alpha_prev)

    def step(self, trajectory: str, eps, timestep) -> None:
        latents = self.trajectories[trajectory]
        self.trajectories[trajectory] = self.scheduler.step(eps, timestep, latents).prev_sample


def sample_batch(
    pipeline,
    sampler: Sampler,
    prompts: PromptSet,
    seeds: Sequence[int],
    *,
    steps: int = 50,
    on_step: Callable[[int], None] | None = None,
) -> BatchResult:
    """Denoise one batch (one image per seed) with ``sampler`` and decode it."""
    import torch

    check_steps(steps)
    sampler = sampler.for_steps(steps)  # step windows count steps of the sampler's schedule, not of this run
    with _run_lock(pipeline), torch.inference_mode():
        run = _Run(pipeline, sampler, prompts, seeds, steps)
        hooks = sampler.run_hooks(run)
        with hooks.installed():
            for step, timestep in enumerate(run.scheduler.timesteps):
                hooks.before_step(step, timestep)
                branches = sampler.branches(step)
                hooks.before_call(step, branches)
                preds = run.call_unet(branches, timestep)
                guidance = sampler.combine(step, preds, mask=hooks.mask(step))
                for trajectory, eps in guidance.by_trajectory().items():
                    run.step(trajectory, eps, timestep)
                if on_step is not None:
                    on_step(step + 1)
        latents = run.trajectories[MAIN]
        images = decode(pipeline, latents)
        final_mask = hooks.final_mask()
        masks = _mask_images(final_mask, images) if final_mask is not None else []
    return BatchResult(
        images=images,
        latents=latents,
        unet_evaluations=run.evaluations,
        masks=masks,
        prompt_truncated=run.truncated,
    )


def decode(pipeline, latents) -> list:
    """VAE-decode latents into PIL images."""
    vae = pipeline.vae
    pixels = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor).sample
    return pipeline.image_processor.postprocess(pixels, output_type="pil")


def _mask_images(mask, images) -> list:
    """One black-and-white PIL image per (N, 1, h, w) mask row, resized to its image."""
    from PIL import Image

    out = []
    for single, image in zip(mask[:, 0].to("cpu"), images, strict=True):
        pixels = single.numpy().astype("uint8") * 255
        out.append(Image.fromarray(pixels).resize(image.size, Image.NEAREST))
    return out
