"""The contract every sampler's test class inherits; each sampler's file supplies its settings and special cases.

A subclass sets ``name``, ``paper_defaults`` (the SD-2 defaults, in declaration order),
``evaluation_counts`` ((params, evaluations per step over 10 steps) pairs), ``loop_counts`` ((params,
evaluations per image over the fixture's STEPS) pairs, counted at the UNet), ``batch_params`` and
``lean_params`` (a setting where branches are skipped, compared with the reference code's batching).
Step windows in these settings count steps of the run itself (``window_steps`` = the run's steps).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from generation.errors import ParameterError
from generation.samplers import CONCEPT, SUPERCLASS, SWEEP_PRESETS, UNCOND, build_sampler, describe, validate_params
from tests.generation.conftest import STEPS

ATOL = 1e-4  # float32 round-off: batch composition changes kernel summation order
RTOL = 1e-4

# Known branch predictions for the combination formulas.
U, C, S = np.array([1.0, -2.0]), np.array([3.0, 0.5]), np.array([-1.0, 4.0])
PREDS = {UNCOND: U, CONCEPT: C, SUPERCLASS: S}


def combine(name, params, step, preds=PREDS, mask=None):
    return build_sampler(name, params).combine(step, preds, mask=mask).eps


def assert_same(a, b):
    torch.testing.assert_close(a.latents, b.latents, atol=ATOL, rtol=RTOL)


def assert_differs(a, b):
    assert (a.latents - b.latents).abs().max() > 1e-3


class SamplerContract:
    name: str
    paper_defaults: dict
    evaluation_counts: list[tuple[dict, list[int]]]
    loop_counts: list[tuple[dict | None, int]]
    batch_params: dict | None = None
    lean_params: dict | None = None

    def test_defaults_are_the_papers_sd2_values(self):
        assert validate_params(self.name, {}) == self.paper_defaults
        assert validate_params(self.name, None) == self.paper_defaults

    def test_described_parameters_match_validation(self):
        [row] = [row for row in json.loads(json.dumps(describe())) if row["name"] == self.name]
        assert [param["name"] for param in row["parameters"]] == list(self.paper_defaults)
        for param in row["parameters"]:
            assert param["default"] == self.paper_defaults[param["name"]]
            if param["minimum"] is not None:
                with pytest.raises(ParameterError):
                    validate_params(self.name, {param["name"]: param["minimum"] - 1})
            if param["maximum"] is not None:
                with pytest.raises(ParameterError):
                    validate_params(self.name, {param["name"]: param["maximum"] + 1})

    def test_unknown_parameter_is_rejected(self):
        with pytest.raises(ParameterError, match=f"{self.name}: unknown parameter 'nope'"):
            validate_params(self.name, {"nope": 1})

    def test_sweep_preset_is_valid(self):
        grid = SWEEP_PRESETS[self.name]
        assert len(grid) >= 3
        for point in grid:
            validate_params(self.name, point)

    def test_evaluations_per_image_match_the_required_counts(self):
        for params, per_step in self.evaluation_counts:
            assert build_sampler(self.name, params).evaluations_per_image(10) == sum(per_step), params

    def test_loop_counts_unet_evaluations_per_image(self, run_sampler, unet_calls):
        for params, per_image in self.loop_counts:
            unet_calls.clear()
            assert run_sampler(self.name, params, seed_indices=(0, 1)).unet_evaluations == per_image, params
            assert sum(unet_calls) == 2 * per_image, params
            assert build_sampler(self.name, params).evaluations_per_image(STEPS) == per_image, params

    def test_skipped_branches_change_nothing_but_the_cost(self, run_sampler, unet_calls):
        lean = run_sampler(self.name, self.lean_params)
        lean_rows = sum(unet_calls)
        paper = run_sampler(self.name, self.lean_params, paper_batching=True)
        assert_same(lean, paper)
        assert paper.unet_evaluations == build_sampler(
            self.name, self.lean_params, paper_batching=True
        ).evaluations_per_image(STEPS)
        assert sum(unet_calls) - lean_rows == 2 * paper.unet_evaluations >= 2 * lean.unet_evaluations

    def test_batched_equals_unbatched(self, run_sampler):
        together = run_sampler(self.name, self.batch_params, seed_indices=(0, 1, 2))
        alone = [run_sampler(self.name, self.batch_params, seed_indices=(i,)) for i in (2, 0)]
        torch.testing.assert_close(together.latents[2:3], alone[0].latents, atol=ATOL, rtol=RTOL)
        torch.testing.assert_close(together.latents[0:1], alone[1].latents, atol=ATOL, rtol=RTOL)

    def test_same_seed_same_image(self, run_sampler):
        first, second = run_sampler(self.name), run_sampler(self.name)
        assert torch.equal(first.latents, second.latents)
        assert first.images[0].tobytes() == second.images[0].tobytes()

    def test_attention_processors_are_restored_after_a_run(self, tiny_pipeline, run_sampler):
        before = {name: type(p) for name, p in tiny_pipeline.unet.attn_processors.items()}
        run_sampler(self.name)
        assert {name: type(p) for name, p in tiny_pipeline.unet.attn_processors.items()} == before
