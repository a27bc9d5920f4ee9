"""Multi-stage: superclass guidance with the total scale before t_sw, then Mixed."""

from __future__ import annotations

import numpy as np

from generation.samplers import SUPERCLASS, UNCOND
from tests.generation.conftest import STEPS
from tests.generation.samplers.contract import C, S, SamplerContract, U, assert_differs, assert_same, combine


class TestMultistage(SamplerContract):
    name = "multistage"
    paper_defaults = {"w_c": 4.0, "w_s": 3.0, "t_sw": 10, "window_steps": 50}
    evaluation_counts = [
        ({"t_sw": 4, "window_steps": 10}, [2] * 4 + [3] * 6),
        ({"t_sw": 20, "window_steps": 50}, [2] * 4 + [3] * 6),  # the same point of the schedule
        ({"t_sw": 4, "w_s": 0.0, "window_steps": 10}, [2] * 10),
    ]
    loop_counts = [({"t_sw": 1, "window_steps": STEPS}, 2 * 1 + 3 * (4 - 1))]  # two per step, then three
    batch_params = {"t_sw": 2, "window_steps": STEPS}
    lean_params = {"t_sw": 2, "window_steps": STEPS}

    def test_uses_total_scale_before_switch(self):
        params = {"w_c": 4.0, "w_s": 3.0, "t_sw": 3}
        np.testing.assert_allclose(combine("multistage", params, 2, {UNCOND: U, SUPERCLASS: S}), U + 7 * (S - U))
        np.testing.assert_allclose(combine("multistage", params, 3), U + 4 * (C - U) + 3 * (S - U))

    def test_switching_at_zero_equals_mixed(self, run_sampler):
        assert_same(
            run_sampler("multistage", {"w_c": 4.0, "w_s": 3.0, "t_sw": 0}),
            run_sampler("mixed", {"w_c": 4.0, "w_s": 3.0}),
        )

    def test_identity_is_not_vacuous(self, run_sampler):
        assert_differs(
            run_sampler("multistage", {"t_sw": 2, "window_steps": STEPS}),
            run_sampler("mixed", {"w_c": 4.0, "w_s": 3.0}),
        )
