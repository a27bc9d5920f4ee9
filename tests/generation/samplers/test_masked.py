"""Masked: Mixed inside the superclass word's cross-attention mask, superclass guidance outside."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from generation.errors import ParameterError
from generation.samplers import CONCEPT, SUPERCLASS, SWEEP_PRESETS, UNCOND, build_sampler
from generation.samplers.masked import quantile_mask
from tests.generation.conftest import STEPS
from tests.generation.samplers.contract import (
    PREDS,
    C,
    S,
    SamplerContract,
    U,
    assert_differs,
    assert_same,
    combine,
)


class TestMasked(SamplerContract):
    name = "masked"
    paper_defaults = {
        "t_sw": 3,
        "w_c0": 0.0,
        "w_s0": 7.0,
        "w_c": 3.5,
        "w_s": 3.5,
        "w": None,
        "q": 0.7,
        "window_steps": 50,
    }
    evaluation_counts = [
        ({"window_steps": 10}, [2] * 3 + [3] * 7),
        ({"w_c0": 1.0, "window_steps": 10}, [3] * 10),
        ({"w_c": 0.0, "window_steps": 10}, [2] * 10),
    ]
    loop_counts = [({"t_sw": 2, "window_steps": STEPS}, 2 * 2 + 3 * 2), ({"t_sw": 0}, 3 * 4)]
    batch_params = {"t_sw": 2, "window_steps": STEPS}
    lean_params = {"t_sw": 2, "window_steps": STEPS}

    def test_mixes_inside_and_guides_superclass_outside(self):
        params = {"t_sw": 1, "w_c0": 1.0, "w_s0": 6.0, "w_c": 3.0, "w_s": 2.0, "w": 7.0}
        np.testing.assert_allclose(combine("masked", params, 0), U + 1 * (C - U) + 6 * (S - U))
        mask = np.array([1.0, 0.0])
        inside = U + 3 * (C - U) + 2 * (S - U)
        outside = U + 7 * (S - U)
        np.testing.assert_allclose(combine("masked", params, 1, mask=mask), [inside[0], outside[1]])

    def test_outside_weight_defaults_to_w_c_plus_w_s_as_equation_10(self):
        params = {"t_sw": 0, "w_c": 5.0, "w_s": 0.0}
        mask = np.array([1.0, 0.0])  # pixel 0 inside, pixel 1 outside
        np.testing.assert_allclose(
            combine("masked", params, 0, mask=mask), [(U + 5 * (C - U))[0], (U + 5 * (S - U))[1]]
        )
        np.testing.assert_allclose(combine("masked", {**params, "w": 7.0}, 0, mask=mask)[1], (U + 7 * (S - U))[1])

    def test_skips_the_concept_branch_while_its_weight_is_zero(self):
        sampler = build_sampler("masked", {"t_sw": 2, "w_c0": 0.0, "window_steps": 4})
        assert [sampler.branches(i) for i in range(3)] == [(UNCOND, SUPERCLASS)] * 2 + [(UNCOND, CONCEPT, SUPERCLASS)]
        assert build_sampler("masked", {"w_c": 0.0}).branches(5) == (UNCOND, SUPERCLASS)  # the mask still needs it
        assert build_sampler("masked").evaluations_per_image(50) == 2 * 3 + 3 * 47

    def test_the_preset_is_the_papers_grid(self):
        assert SWEEP_PRESETS["masked"] == [{"q": q} for q in (0.3, 0.5, 0.7, 0.9)]

    def test_needs_a_mask_after_the_switch(self):
        sampler = build_sampler("masked", {"t_sw": 1})
        assert not sampler.needs_mask(0) and sampler.needs_mask(1)
        with pytest.raises(ParameterError, match="expected a mask"):
            sampler.combine(1, PREDS, mask=None)

    def test_all_ones_mask_equals_mixed(self, run_sampler):
        assert_same(
            run_sampler("masked", {"t_sw": 0, "q": 0.0, "w_c": 3.5, "w_s": 3.5}),
            run_sampler("mixed", {"w_c": 3.5, "w_s": 3.5}),
        )

    def test_identity_is_not_vacuous(self, run_sampler):
        assert_differs(run_sampler("masked", {"t_sw": 0, "q": 0.5}), run_sampler("mixed", {}))

    def test_default_at_50_steps_skips_the_concept_branch_before_the_switch(self, run_sampler, unet_calls):
        result = run_sampler("masked", seed_indices=(0,), steps=50)
        assert result.unet_evaluations == sum(unet_calls) == 2 * 3 + 3 * 47
        assert build_sampler("masked", paper_batching=True).evaluations_per_image(50) == 150

    def test_mask_covers_the_top_quantile(self, run_sampler):
        result = run_sampler("masked", {"t_sw": 1, "q": 0.75, "window_steps": STEPS}, superclass="stuffed animal")
        assert len(result.masks) == 2
        for mask in result.masks:
            assert mask.size == result.images[0].size
            on = mask.tobytes().count(255) / (mask.size[0] * mask.size[1])
            assert on == pytest.approx(0.25, abs=1 / 64)

    def test_quantile_mask_thresholds_each_image(self):
        attention = torch.arange(32, dtype=torch.float32).view(2, 4, 4)
        mask = quantile_mask(attention, 0.5)
        assert mask.shape == (2, 1, 4, 4)
        assert mask.sum().item() == 16 and bool(mask[0, 0, 3, 3]) and not bool(mask[0, 0, 0, 0])
        assert quantile_mask(attention, 0.0).all()
