"""Mixed: concept and superclass guidance at every step."""

from __future__ import annotations

import numpy as np

from generation.samplers import SWEEP_PRESETS, build_sampler
from generation.samplers.mixed import mixed_guidance
from tests.generation.samplers.contract import C, S, SamplerContract, U, assert_differs, assert_same, combine


class TestMixed(SamplerContract):
    name = "mixed"
    paper_defaults = {"w_c": 3.5, "w_s": 3.5}
    evaluation_counts = [({}, [3] * 10), ({"w_s": 0.0}, [2] * 10), ({"w_c": 0.0}, [2] * 10)]
    loop_counts = [(None, 3 * 4), ({"w_c": 7.0, "w_s": 0.0}, 2 * 4), ({"w_c": 0.0, "w_s": 7.0}, 2 * 4)]
    lean_params = {"w_c": 7.0, "w_s": 0.0}

    def test_adds_both_guidance_terms(self):
        expected = U + 3.5 * (C - U) + 1.5 * (S - U)
        np.testing.assert_allclose(combine("mixed", {"w_c": 3.5, "w_s": 1.5}, 0), expected)
        np.testing.assert_allclose(expected, [1 + 7 - 3, -2 + 8.75 + 9])
        np.testing.assert_allclose(mixed_guidance(U, C, S, 3.5, 1.5), expected)

    def test_preset_keeps_total_guidance_at_seven(self):
        assert {"w_s": 0.0, "w_c": 7.0} in SWEEP_PRESETS["mixed"]
        assert all(p["w_c"] + p["w_s"] == 7.0 for p in SWEEP_PRESETS["mixed"])

    def test_without_superclass_guidance_equals_base(self, run_sampler):
        assert_same(run_sampler("mixed", {"w_c": 7.0, "w_s": 0.0}), run_sampler("base", {"w": 7.0}))

    def test_identity_is_not_vacuous(self, run_sampler):
        assert_differs(run_sampler("mixed", {"w_c": 3.5, "w_s": 3.5}), run_sampler("base", {"w": 7.0}))

    def test_without_concept_guidance_equals_superclass(self, run_sampler):
        assert_same(run_sampler("mixed", {"w_c": 0.0, "w_s": 7.0}), run_sampler("superclass", {"w": 7.0}))

    def test_a_zero_weight_branch_is_not_evaluated_at_50_steps(self, run_sampler, unet_calls):
        result = run_sampler("mixed", {"w_c": 7.0, "w_s": 0.0}, seed_indices=(0,), steps=50)
        assert result.unet_evaluations == sum(unet_calls) == 100
        assert build_sampler("mixed", {"w_c": 7.0, "w_s": 0.0}, paper_batching=True).evaluations_per_image(50) == 150
