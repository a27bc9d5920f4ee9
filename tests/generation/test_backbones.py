"""SD-XL and PixArt-alpha: identified from their folders, faithful to diffusers' own pipelines, every sampler."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from generation.backbones import backbone_of
from generation.errors import ModelLoadError
from generation.loop import initial_latents
from generation.pipelines import identify_backbone, load_pipeline
from generation.samplers import SAMPLER_NAMES, build_sampler
from generation.seeds import seed_for
from tests.generation.conftest import STEPS, TEMPLATE

ATOL = 1e-4
RTOL = 1e-4


@pytest.fixture(scope="module")
def sdxl(tiny_sdxl_dir):
    return load_pipeline(tiny_sdxl_dir, device="cpu")


@pytest.fixture(scope="module")
def pixart(tiny_pixart_dir):
    return load_pipeline(tiny_pixart_dir, device="cpu")


@pytest.fixture(scope="module")
def pipelines(tiny_pipeline, sdxl, pixart):
    return {"sd": tiny_pipeline, "sdxl": sdxl, "pixart_alpha": pixart}


def start_latents(seed_indices=(0, 1)):
    return initial_latents([seed_for(TEMPLATE, i) for i in seed_indices], (8, 8))


def test_backbone_is_read_from_model_index(backbone_dirs):
    assert {name: identify_backbone(folder) for name, folder in backbone_dirs.items()} == {
        "sd": "sd",
        "sdxl": "sdxl",
        "pixart_alpha": "pixart_alpha",
    }


def test_another_pipeline_class_is_refused_by_name(tmp_path):
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "KandinskyPipeline"}))
    with pytest.raises(ModelLoadError, match=r"expected a StableDiffusionPipeline, .* got KandinskyPipeline"):
        identify_backbone(tmp_path)


def test_sdxl_loads_with_both_encoders_and_ddim(sdxl):
    assert type(sdxl).__name__ == "StableDiffusionXLPipeline"
    assert type(sdxl.scheduler).__name__ == "DDIMScheduler"
    assert backbone_of(sdxl).name == "sdxl" and sdxl.text_encoder_2 is not None


def test_sdxl_conditioning_has_pooled_embeds_time_ids_and_a_zero_empty_prompt(sdxl):
    encoded = backbone_of(sdxl).encode(["", "a sks dog in the snow"])
    empty, concept = encoded.conditioning[""], encoded.conditioning["a sks dog in the snow"]
    assert concept.hidden.shape == (1, 77, 64)  # two 32-wide encoders, concatenated
    assert concept.extras["text_embeds"].shape == (1, 32)
    assert concept.extras["time_ids"].tolist() == [[64, 64, 0, 0, 64, 64]]
    assert not empty.hidden.any() and not empty.extras["text_embeds"].any()
    assert concept.hidden.abs().sum() > 0


def test_pixart_conditioning_masks_the_padding(pixart):
    encoded = backbone_of(pixart).encode(["a sks dog in the snow"])
    mask = encoded.conditioning["a sks dog in the snow"].extras["attention_mask"]
    assert mask.shape == (1, 120) and mask.sum().item() == 7  # six words and </s>


def test_sdxl_base_matches_diffusers_sdxl_pipeline(sdxl, run_sampler):
    reference = sdxl(
        ["a sks dog in the snow"] * 2,
        latents=start_latents(),
        guidance_scale=5.0,
        num_inference_steps=STEPS,
        height=64,
        width=64,
        output_type="latent",
    ).images
    ours = run_sampler("base", {"w": 5.0}, pipeline=sdxl)
    torch.testing.assert_close(ours.latents, reference, atol=ATOL, rtol=RTOL)


def test_pixart_base_matches_diffusers_pixart_pipeline(pixart, run_sampler):
    reference = pixart(
        ["a sks dog in the snow"] * 2,
        negative_prompt="",
        latents=start_latents(),
        guidance_scale=4.5,
        num_inference_steps=STEPS,
        height=64,
        width=64,
        use_resolution_binning=False,
        clean_caption=False,
        output_type="latent",
    ).images
    ours = run_sampler("base", {"w": 4.5}, pipeline=pixart)
    torch.testing.assert_close(ours.latents, reference, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("backbone", ["sdxl", "pixart_alpha"])
@pytest.mark.parametrize("name", SAMPLER_NAMES)
def test_every_sampler_runs_and_counts_its_evaluations(pipelines, run_sampler, backbone, name):
    result = run_sampler(name, pipeline=pipelines[backbone], steps=3)
    assert result.unet_evaluations == build_sampler(name, {}).evaluations_per_image(3)
    assert [image.size for image in result.images] == [(64, 64), (64, 64)]
    assert torch.isfinite(result.latents).all()


@pytest.mark.parametrize("backbone", ["sd", "sdxl", "pixart_alpha"])
def test_masked_with_an_all_ones_mask_equals_mixed_on_every_backbone(pipelines, run_sampler, backbone):
    pipeline = pipelines[backbone]
    masked = run_sampler("masked", {"t_sw": 0, "q": 0.0}, pipeline=pipeline)
    mixed = run_sampler("mixed", pipeline=pipeline)
    torch.testing.assert_close(masked.latents, mixed.latents, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("backbone", ["sdxl", "pixart_alpha"])
def test_masked_mask_follows_the_superclass_word(pipelines, run_sampler, backbone):
    result = run_sampler("masked", {"q": 0.5}, pipeline=pipelines[backbone], seed_indices=(0,))
    covered = (np.asarray(result.masks[0]) > 0).mean()
    assert 0.3 <= covered <= 0.7  # the upper half of the superclass word's attention, resized to the image


@pytest.mark.parametrize("backbone", ["sdxl", "pixart_alpha"])
def test_photoswap_changes_the_concept_image_only_while_its_windows_are_open(pipelines, run_sampler, backbone):
    pipeline = pipelines[backbone]
    closed = run_sampler("photoswap", {"t_sf": 0, "t_cm": 0, "t_sm": 0, "w_c": 7.0}, pipeline=pipeline)
    base = run_sampler("base", {"w": 7.0}, pipeline=pipeline)
    torch.testing.assert_close(closed.latents, base.latents, atol=ATOL, rtol=RTOL)
    windows = {"t_sf": 2, "t_cm": 3, "t_sm": 3, "window_steps": STEPS}  # counted on this run's own steps
    swapped = run_sampler("photoswap", {**windows, "w_c": 7.0}, pipeline=pipeline)
    assert not torch.allclose(swapped.latents, base.latents, atol=1e-3)


def test_a_full_fine_tuned_pixart_transformer_replaces_the_base_one(tiny_pixart_dir, pixart, tmp_path):
    with torch.no_grad():
        tuned = type(pixart.transformer).from_pretrained(tiny_pixart_dir / "transformer")
        tuned.pos_embed.proj.bias.add_(1.0)
    tuned.save_pretrained(tmp_path / "transformer")
    loaded = load_pipeline(tiny_pixart_dir, personalization=tmp_path, device="cpu")
    torch.testing.assert_close(loaded.transformer.pos_embed.proj.bias, pixart.transformer.pos_embed.proj.bias + 1.0)


def test_a_format_the_backbone_cannot_take_is_refused_by_name(tiny_pixart_dir, tmp_path):
    (tmp_path / "learned_embeds.bin").write_bytes(b"")
    with pytest.raises(ModelLoadError, match=r"\(textual_inversion\): not supported on PixArt-alpha pipelines"):
        load_pipeline(tiny_pixart_dir, personalization=tmp_path, device="cpu")


def test_token_positions_follow_the_tokenizers_special_tokens():
    from generation.prompts import phrase_span, token_count
    from generation.tiny import build_t5_tokenizer, build_tokenizer
    from generation.tiny.tokenizer import PROMPT_WORDS

    clip, t5 = build_tokenizer(PROMPT_WORDS), build_t5_tokenizer(PROMPT_WORDS)
    assert phrase_span(clip, TEMPLATE, "sks dog") == (2, 4)  # <|startoftext|> a sks dog
    assert phrase_span(t5, TEMPLATE, "sks dog") == (1, 3)  # ▁a ▁sks ▁dog: T5 has no start token
    assert token_count(clip, "a sks dog") == 5 and token_count(t5, "a sks dog") == 4
