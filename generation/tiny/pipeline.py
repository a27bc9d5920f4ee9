"""A tiny, randomly initialised Stable Diffusion pipeline with the real architecture, built offline.

Every component is a real diffusers/transformers class (UNet2DConditionModel, AutoencoderKL,
CLIPTextModel, CLIPTokenizer, DDIMScheduler) with small widths, saved in the diffusers folder layout
and loaded back through the same ``from_pretrained`` path as a downloaded model. The tokenizer is the
byte-level BPE of ``generation.tiny.tokenizer``, so the evaluation prompts' words (and ``sks``) are
single tokens.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from generation.tiny.folders import build_once
from generation.tiny.tokenizer import MAX_TOKENS, PROMPT_WORDS, build_tokenizer

IMAGE_SIZE = 64
LATENT_SIZE = 8  # IMAGE_SIZE / VAE scale factor 8, as in Stable Diffusion
TEXT_WIDTH = 32


def build_components(seed: int = 0) -> dict:
    """Tiny real-architecture components, each seeded before construction (diffusers test style)."""
    import torch
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = build_tokenizer(PROMPT_WORDS)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=LATENT_SIZE,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=TEXT_WIDTH,
        attention_head_dim=(2, 4),
        norm_num_groups=8,
        use_linear_projection=True,
    )
    torch.manual_seed(seed + 1)
    vae = tiny_vae()
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=TEXT_WIDTH,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=MAX_TOKENS,
            projection_dim=TEXT_WIDTH,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    return {
        "unet": unet,
        "vae": vae,
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "scheduler": tiny_scheduler(),
    }


def tiny_vae():
    """The tiny VAE (scale factor 8, 4 latent channels); seed torch before calling."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(8, 8, 16, 16),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=IMAGE_SIZE,
    )


def tiny_scheduler():
    """DDIM with SD-2-base's schedule (scaled-linear betas 0.00085 to 0.012, epsilon prediction)."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type="epsilon",
    )


def save_tiny_pipeline(directory: Path, seed: int = 0) -> None:
    from diffusers import StableDiffusionPipeline

    pipeline = StableDiffusionPipeline(
        **build_components(seed), safety_checker=None, feature_extractor=None, requires_safety_checker=False
    )
    pipeline.save_pretrained(directory, safe_serialization=True)
    (directory / "TINY_MODEL.json").write_text(
        json.dumps({"image_size": IMAGE_SIZE, "seed": seed, "note": "random weights"}, indent=2) + "\n"
    )


def ensure_tiny_model(directory: str | os.PathLike) -> Path:
    """Build the tiny pipeline at ``directory`` unless it is already there; return the folder.

    Safe when several processes call it at once. If the folder already holds other things (the tiny
    CLIP and DINO models of ``make-tiny``), the components are moved in one by one and
    ``model_index.json``, the completion marker, last.
    """
    return build_once(Path(directory), save_tiny_pipeline, _has_model_index, last="model_index.json")


def _has_model_index(folder: Path) -> bool:
    return (folder / "model_index.json").is_file()
