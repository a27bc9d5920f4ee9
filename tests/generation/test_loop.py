"""The denoising loop on the tiny model: identities, batching, counts, seeds, attention hooks."""

from __future__ import annotations

import pytest
import torch

from generation.loop import initial_latents, quantile_mask, refine_latents, to_epsilon
from generation.samplers import SAMPLER_NAMES
from generation.seeds import seed_for

STEPS = 4  # matches the run_sampler fixture
TEMPLATE = "a {concept} in the snow"

ATOL = 1e-4  # float32 round-off: batch composition changes kernel summation order
RTOL = 1e-4


def assert_same(a, b):
    torch.testing.assert_close(a.latents, b.latents, atol=ATOL, rtol=RTOL)


def assert_differs(a, b):
    assert (a.latents - b.latents).abs().max() > 1e-3


IDENTITIES = [
    (("mixed", {"w_c": 7.0, "w_s": 0.0}), ("base", {"w": 7.0})),
    (("switching", {"w": 7.0, "t_sw": 0}), ("base", {"w": 7.0})),
    (("multistage", {"w_c": 4.0, "w_s": 3.0, "t_sw": 0}), ("mixed", {"w_c": 4.0, "w_s": 3.0})),
    (("profusion", {"w_c": 3.5, "w_s": 3.5, "r": 0.0, "refine_steps": 2}), ("mixed", {"w_c": 3.5, "w_s": 3.5})),
    (("masked", {"t_sw": 0, "q": 0.0, "w_c": 3.5, "w_s": 3.5}), ("mixed", {"w_c": 3.5, "w_s": 3.5})),
    (("photoswap", {"t_sf": 0, "t_cm": 0, "t_sm": 0, "w_c": 7.0}), ("base", {"w": 7.0})),
]


@pytest.mark.parametrize("left, right", IDENTITIES, ids=[f"{a[0]}=={b[0]}" for a, b in IDENTITIES])
def test_documented_identities(run_sampler, left, right):
    assert_same(run_sampler(*left), run_sampler(*right))


NOT_IDENTICAL = [
    (("mixed", {"w_c": 3.5, "w_s": 3.5}), ("base", {"w": 7.0})),
    (("switching", {"t_sw": 2}), ("base", {})),
    (("multistage", {"t_sw": 2}), ("mixed", {"w_c": 4.0, "w_s": 3.0})),
    (("profusion", {"r": 1.0}), ("mixed", {})),
    (("masked", {"t_sw": 0, "q": 0.5}), ("mixed", {})),
    (("photoswap", {}), ("base", {})),
]


@pytest.mark.parametrize("left, right", NOT_IDENTICAL, ids=[f"{a[0]}!={b[0]}" for a, b in NOT_IDENTICAL])
def test_identities_are_not_vacuous(run_sampler, left, right):
    assert_differs(run_sampler(*left), run_sampler(*right))


@pytest.mark.parametrize("name", SAMPLER_NAMES)
def test_batched_equals_unbatched(run_sampler, name):
    params = {"t_sw": 2} if name in ("switching", "multistage", "masked") else None
    together = run_sampler(name, params, seed_indices=(0, 1, 2))
    alone = [run_sampler(name, params, seed_indices=(i,)) for i in (2, 0)]
    torch.testing.assert_close(together.latents[2:3], alone[0].latents, atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(together.latents[0:1], alone[1].latents, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize(
    "name, params, per_step",
    [
        ("base", None, 2),
        ("superclass", None, 2),
        ("switching", {"t_sw": 2}, 2),
        ("mixed", None, 3),
        ("masked", {"t_sw": 2}, 3),
        ("photoswap", None, 4),
        ("profusion", {"refine_steps": 1}, 5),
        ("profusion", {"refine_steps": 2}, 7),
    ],
)
def test_loop_counts_unet_evaluations_per_image(run_sampler, name, params, per_step):
    assert run_sampler(name, params).unet_evaluations == per_step * STEPS


def test_multistage_costs_two_then_three(run_sampler):
    assert run_sampler("multistage", {"t_sw": 1}).unet_evaluations == 2 * 1 + 3 * (STEPS - 1)


def test_base_matches_plain_diffusers_pipeline(tiny_pipeline, run_sampler):
    seeds = [seed_for(TEMPLATE, i) for i in (0, 1)]
    latents = initial_latents(seeds, (8, 8))
    reference = tiny_pipeline(
        ["a sks dog in the snow"] * 2, latents=latents, guidance_scale=7.0, num_inference_steps=STEPS,
        output_type="latent",
    ).images
    ours = run_sampler("base", {"w": 7.0}, seed_indices=(0, 1))
    torch.testing.assert_close(ours.latents, reference, atol=ATOL, rtol=RTOL)


def test_same_template_and_index_give_the_same_start_for_any_batch():
    seeds = [seed_for(TEMPLATE, i) for i in range(3)]
    assert torch.equal(initial_latents(seeds, (8, 8))[1], initial_latents(seeds[1:2], (8, 8))[0])
    assert not torch.equal(initial_latents(seeds[:1], (8, 8)), initial_latents(seeds[1:2], (8, 8)))


def test_same_seed_same_image(run_sampler):
    first, second = run_sampler("masked"), run_sampler("masked")
    assert torch.equal(first.latents, second.latents)
    assert first.images[0].tobytes() == second.images[0].tobytes()


def test_masked_mask_covers_the_top_quantile(run_sampler):
    result = run_sampler("masked", {"t_sw": 1, "q": 0.75}, superclass="stuffed animal")
    assert len(result.masks) == 2
    for mask in result.masks:
        assert mask.size == result.images[0].size
        on = mask.tobytes().count(255) / (mask.size[0] * mask.size[1])
        assert on == pytest.approx(0.25, abs=1 / 64)


def test_quantile_mask_thresholds_each_image():
    attention = torch.arange(32, dtype=torch.float32).view(2, 4, 4)
    mask = quantile_mask(attention, 0.5)
    assert mask.shape == (2, 1, 4, 4)
    assert mask.sum().item() == 16 and bool(mask[0, 0, 3, 3]) and not bool(mask[0, 0, 0, 0])
    assert quantile_mask(attention, 0.0).all()


def test_attention_processors_are_restored_after_a_run(tiny_pipeline, run_sampler):
    before = {name: type(p) for name, p in tiny_pipeline.unet.attn_processors.items()}
    run_sampler("masked")
    run_sampler("photoswap")
    assert {name: type(p) for name, p in tiny_pipeline.unet.attn_processors.items()} == before


def test_photoswap_token_alignment_changes_the_result(run_sampler):
    aligned = run_sampler("photoswap", {"t_sf": 0, "t_sm": 0, "t_cm": STEPS})
    by_index = run_sampler("photoswap", {"t_sf": 0, "t_sm": 0, "t_cm": STEPS, "align_tokens": False})
    assert_differs(aligned, by_index)


def test_token_map_aligns_by_template_position():
    from generation.attention import token_map

    # "a sks dog in the snow" (concept, phrase at 2..4) vs "a dog in the snow" (superclass, phrase at 2..3)
    matrix = token_map(10, (2, 4), (2, 3))
    assert matrix[1, 1] == 1  # "a" -> "a"
    assert matrix[2, 2] == 1 and matrix[2, 3] == 1  # "dog" feeds both "sks" and "dog"
    assert matrix[3, 4] == 1  # superclass "in" (3) -> concept "in" (4)
    assert matrix[:, 4].sum() == 1 and matrix[3, 3] == 0


def test_photoswap_refuses_unfused_custom_diffusion_processors(tiny_model_dir, run_sampler):
    from diffusers import StableDiffusionPipeline
    from diffusers.models.attention_processor import CustomDiffusionAttnProcessor2_0

    from generation.errors import GenerationError

    pipeline = StableDiffusionPipeline.from_pretrained(tiny_model_dir, safety_checker=None)
    pipeline.unet.set_attn_processor(
        {name: CustomDiffusionAttnProcessor2_0(train_kv=False, train_q_out=False)
         for name in pipeline.unet.attn_processors}
    )
    with pytest.raises(GenerationError, match="Custom Diffusion"):
        run_sampler("photoswap", pipeline=pipeline)


def test_refinement_is_identity_at_zero_intensity():
    latents, eps, noise = torch.randn(3, 4), torch.randn(3, 4), torch.randn(3, 4)
    assert torch.equal(refine_latents(latents, eps, noise, 0.3, 0.5, 0.0), latents)


def test_refinement_matches_the_closed_form():
    latents, eps, noise = torch.ones(1), torch.full((1,), 0.5), torch.full((1,), 2.0)
    a_t, a_p, r = 0.3, 0.5, 0.8
    var = (1 - a_p) / (1 - a_t) * (1 - a_t / a_p)
    s = r * var**0.5
    drift = 0.5 * s**2 * (1 - a_t) ** 0.5 / (1 - a_p)
    spread = s * 2 * ((1 - a_t) * (2 - 2 * a_p - s**2)) ** 0.5 / (1 - a_p)
    expected = 1 - drift + spread
    torch.testing.assert_close(refine_latents(latents, eps, noise, a_t, a_p, r), torch.tensor([expected]))


def test_v_prediction_converts_to_epsilon():
    x0, eps, alpha = torch.randn(5), torch.randn(5), 0.36
    latents = alpha**0.5 * x0 + (1 - alpha) ** 0.5 * eps
    v = alpha**0.5 * eps - (1 - alpha) ** 0.5 * x0
    torch.testing.assert_close(to_epsilon(v, latents, alpha, "v_prediction"), eps)


def test_v_prediction_model_runs(tiny_pipeline, run_sampler):
    from diffusers import DDIMScheduler

    original = tiny_pipeline.scheduler
    tiny_pipeline.scheduler = DDIMScheduler.from_config(original.config, prediction_type="v_prediction")
    try:
        v_run = run_sampler("profusion")
    finally:
        tiny_pipeline.scheduler = original
    assert torch.isfinite(v_run.latents).all()
    assert_differs(v_run, run_sampler("profusion"))
