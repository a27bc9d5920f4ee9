"""ProFusion: fusion iterations on the concept prompt before each Mixed step."""

from __future__ import annotations

import numpy as np
import torch

from generation.samplers import CONCEPT, UNCOND, build_sampler
from generation.samplers.profusion import refine_latents, to_epsilon
from tests.generation.samplers.contract import PREDS, C, S, SamplerContract, U, assert_differs, assert_same


class TestProfusion(SamplerContract):
    name = "profusion"
    paper_defaults = {"w_c": 3.5, "w_s": 3.5, "refine_steps": 1, "r": 1.0, "w_r": 7.0, "refine_seed": 10}
    evaluation_counts = [({"refine_steps": 2}, [3 + 2 * 2] * 10), ({"r": 0.0, "refine_steps": 2}, [3] * 10)]
    loop_counts = [({"refine_steps": 1}, 5 * 4), ({"refine_steps": 2}, 7 * 4), ({"r": 0.0}, 3 * 4)]
    lean_params = {"r": 0.0, "w_s": 0.0, "w_c": 7.0}

    def test_refines_with_concept_guidance_and_steps_with_mixed(self):
        sampler = build_sampler("profusion", {"w_c": 2.0, "w_s": 1.0, "w_r": 6.0})
        np.testing.assert_allclose(sampler.refine_combine(0, {UNCOND: U, CONCEPT: C}).eps, U + 6 * (C - U))
        np.testing.assert_allclose(sampler.combine(0, PREDS).eps, U + 2 * (C - U) + 1 * (S - U))

    def test_without_refinement_intensity_equals_mixed(self, run_sampler):
        assert_same(
            run_sampler("profusion", {"w_c": 3.5, "w_s": 3.5, "r": 0.0, "refine_steps": 2}),
            run_sampler("mixed", {"w_c": 3.5, "w_s": 3.5}),
        )

    def test_identity_is_not_vacuous(self, run_sampler):
        assert_differs(run_sampler("profusion", {"r": 1.0}), run_sampler("mixed", {}))

    def test_at_zero_intensity_it_costs_what_mixed_costs_at_50_steps(self, run_sampler, unet_calls):
        result = run_sampler("profusion", {"r": 0.0}, seed_indices=(0,), steps=50)
        assert result.unet_evaluations == sum(unet_calls) == 150
        assert build_sampler("profusion", {"r": 0.0}, paper_batching=True).evaluations_per_image(50) == 250

    def test_refinement_without_concept_guidance_evaluates_only_the_unconditional_branch(self):
        sampler = build_sampler("profusion", {"w_r": 0.0})
        assert sampler.refine_branches(0) == (UNCOND,)
        np.testing.assert_allclose(sampler.refine_combine(0, {UNCOND: U}).eps, U)

    def test_refinement_is_identity_at_zero_intensity(self):
        latents, eps, noise = torch.randn(3, 4), torch.randn(3, 4), torch.randn(3, 4)
        assert torch.equal(refine_latents(latents, eps, noise, 0.3, 0.5, 0.0), latents)

    def test_refinement_matches_the_closed_form(self):
        latents, eps, noise = torch.ones(1), torch.full((1,), 0.5), torch.full((1,), 2.0)
        a_t, a_p, r = 0.3, 0.5, 0.8
        var = (1 - a_p) / (1 - a_t) * (1 - a_t / a_p)
        s = r * var**0.5
        drift = 0.5 * s**2 * (1 - a_t) ** 0.5 / (1 - a_p)
        spread = s * 2 * ((1 - a_t) * (2 - 2 * a_p - s**2)) ** 0.5 / (1 - a_p)
        expected = 1 - drift + spread
        torch.testing.assert_close(refine_latents(latents, eps, noise, a_t, a_p, r), torch.tensor([expected]))

    def test_v_prediction_converts_to_epsilon(self):
        x0, eps, alpha = torch.randn(5), torch.randn(5), 0.36
        latents = alpha**0.5 * x0 + (1 - alpha) ** 0.5 * eps
        v = alpha**0.5 * eps - (1 - alpha) ** 0.5 * x0
        torch.testing.assert_close(to_epsilon(v, latents, alpha, "v_prediction"), eps)

    def test_v_prediction_model_runs(self, tiny_pipeline, run_sampler):
        from diffusers import DDIMScheduler

        original = tiny_pipeline.scheduler
        tiny_pipeline.scheduler = DDIMScheduler.from_config(original.config, prediction_type="v_prediction")
        try:
            v_run = run_sampler("profusion")
        finally:
            tiny_pipeline.scheduler = original
        assert torch.isfinite(v_run.latents).all()
        assert_differs(v_run, run_sampler("profusion"))
