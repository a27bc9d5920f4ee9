"""Photoswap: the concept trajectory borrows attention from a superclass trajectory."""

from __future__ import annotations

import numpy as np
import pytest

from generation.errors import GenerationError
from generation.samplers import CONCEPT, SWAP_SUPERCLASS, SWAP_UNCOND, SWEEP_PRESETS, UNCOND, build_sampler
from tests.generation.conftest import STEPS
from tests.generation.samplers.contract import C, SamplerContract, U, assert_differs, assert_same


class TestPhotoswap(SamplerContract):
    name = "photoswap"
    paper_defaults = {
        "t_sf": 5,
        "t_cm": 15,
        "t_sm": 20,
        "w_c": 7.0,
        "w_s": 7.0,
        "token_alignment": "index",
        "window_steps": 50,
    }
    evaluation_counts = [({}, [4] * 4 + [2] * 6), ({"t_sm": 50}, [4] * 10), ({"w_c": 0.0}, [1] * 10)]
    loop_counts = [(None, 4 * 1 + 2 * 3), ({"t_sf": 1, "t_cm": 3, "t_sm": 2, "window_steps": STEPS}, 4 * 3 + 2)]
    lean_params = {"t_sf": 1, "t_cm": 2, "t_sm": 2, "window_steps": STEPS}

    def test_guides_each_trajectory_separately(self):
        swap_uncond, swap_superclass = np.array([0.0, 1.0]), np.array([2.0, 2.0])
        out = build_sampler("photoswap", {"w_c": 3.0, "w_s": 5.0}).combine(
            0, {UNCOND: U, CONCEPT: C, SWAP_UNCOND: swap_uncond, SWAP_SUPERCLASS: swap_superclass}
        )
        np.testing.assert_allclose(out.eps, U + 3 * (C - U))
        np.testing.assert_allclose(out.swap_eps, swap_uncond + 5 * (swap_superclass - swap_uncond))

    def test_swap_windows_count_initial_steps(self):
        sampler = build_sampler("photoswap", {"t_sf": 1, "t_cm": 3, "t_sm": 2, "window_steps": 4})
        flags = [sampler.swap_flags(i) for i in range(4)]
        assert [f.self_features for f in flags] == [True, False, False, False]
        assert [f.self_maps for f in flags] == [True, True, False, False]
        assert [f.cross_maps for f in flags] == [True, True, True, False]

    def test_without_swapping_the_concept_trajectory_is_base(self, run_sampler):
        assert_same(
            run_sampler("photoswap", {"t_sf": 0, "t_cm": 0, "t_sm": 0, "w_c": 7.0}), run_sampler("base", {"w": 7.0})
        )

    def test_identity_is_not_vacuous(self, run_sampler):
        windows = {"t_sf": 1, "t_cm": 2, "t_sm": 2, "window_steps": STEPS}
        assert_differs(run_sampler("photoswap", windows), run_sampler("base", {}))

    def test_token_alignment_changes_the_result(self, run_sampler):
        windows = {"t_sf": 0, "t_sm": 0, "t_cm": STEPS, "window_steps": STEPS}
        by_index = run_sampler("photoswap", windows)
        aligned = run_sampler("photoswap", {**windows, "token_alignment": "template"})
        assert_differs(aligned, by_index)

    def test_the_preset_is_the_papers_grid(self):
        windows = [(p["t_sf"], p["t_cm"], p["t_sm"]) for p in SWEEP_PRESETS["photoswap"]]
        assert windows == [(1, 10, 15), (5, 15, 20), (10, 20, 25)]

    def test_drops_the_superclass_trajectory_after_its_last_window_at_50_steps(self, run_sampler, unet_calls):
        result = run_sampler("photoswap", seed_indices=(0,), steps=50)
        assert result.unet_evaluations == sum(unet_calls) == 4 * 20 + 2 * 30 == 140
        assert build_sampler("photoswap", paper_batching=True).evaluations_per_image(50) == 200

    def test_refuses_unfused_custom_diffusion_processors(self, tiny_model_dir, run_sampler):
        from diffusers import StableDiffusionPipeline
        from diffusers.models.attention_processor import CustomDiffusionAttnProcessor2_0

        pipeline = StableDiffusionPipeline.from_pretrained(tiny_model_dir, safety_checker=None)
        pipeline.unet.set_attn_processor(
            {
                name: CustomDiffusionAttnProcessor2_0(train_kv=False, train_q_out=False)
                for name in pipeline.unet.attn_processors
            }
        )
        with pytest.raises(GenerationError, match="Custom Diffusion"):
            run_sampler("photoswap", pipeline=pipeline)
