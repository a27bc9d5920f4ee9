"""Switching: superclass guidance for the first t_sw steps, then concept guidance."""

from __future__ import annotations

import numpy as np

from generation.samplers import CONCEPT, SUPERCLASS, SWEEP_PRESETS, UNCOND, build_sampler
from tests.generation.conftest import STEPS
from tests.generation.samplers.contract import C, S, SamplerContract, U, assert_differs, assert_same, combine


class TestSwitching(SamplerContract):
    name = "switching"
    paper_defaults = {"w": 7.0, "t_sw": 7, "window_steps": 50}
    evaluation_counts = [({"t_sw": 4, "window_steps": 10}, [2] * 10)]
    loop_counts = [({"t_sw": 2, "window_steps": STEPS}, 2 * 4)]
    batch_params = {"t_sw": 2, "window_steps": STEPS}
    lean_params = {"t_sw": 2, "window_steps": STEPS}

    def test_uses_superclass_then_concept(self):
        params = {"w": 5.0, "t_sw": 2}
        np.testing.assert_allclose(combine("switching", params, 1, {UNCOND: U, SUPERCLASS: S}), U + 5 * (S - U))
        np.testing.assert_allclose(combine("switching", params, 2, {UNCOND: U, CONCEPT: C}), U + 5 * (C - U))

    def test_evaluates_only_the_branches_of_its_phase(self):
        sampler = build_sampler("switching", {"t_sw": 2})
        assert sampler.branches(1) == (UNCOND, SUPERCLASS)
        assert sampler.branches(2) == (UNCOND, CONCEPT)

    def test_switching_at_zero_equals_base(self, run_sampler):
        assert_same(run_sampler("switching", {"w": 7.0, "t_sw": 0}), run_sampler("base", {"w": 7.0}))

    def test_identity_is_not_vacuous(self, run_sampler):
        assert_differs(run_sampler("switching", {"t_sw": 2, "window_steps": STEPS}), run_sampler("base", {}))

    def test_the_preset_is_the_papers_grid(self):
        assert [point["t_sw"] for point in SWEEP_PRESETS["switching"]] == [1, 3, 5, 7, 10, 20, 30, 40]

    def test_costs_two_evaluations_per_step_where_the_reference_spends_three(self):
        assert build_sampler("switching").evaluations_per_image(50) == 100
        assert build_sampler("switching", paper_batching=True).evaluations_per_image(50) == 150
