"""Architectures of the world's models: real diffusers/transformers classes with small widths.

The text-to-image pipeline is a StableDiffusionPipeline (AutoencoderKL with scale factor 4,
UNet2DConditionModel with cross-attention, CLIPTextModel and CLIPTokenizer, DDIM), the metric models
are a CLIPModel and a Dinov2Model, each saved with ``save_pretrained`` so the platform loads them
exactly as it loads hub models. The judge is a small convolutional classifier of its own.
"""

from __future__ import annotations

import json
from pathlib import Path

from generation.tiny.encoders import CLIP_PREPROCESSING as TINY_CLIP_PREPROCESSING
from generation.tiny.encoders import DINO_PREPROCESSING as TINY_DINO_PREPROCESSING
from generation.tiny.pipeline import tiny_scheduler
from generation.tiny.tokenizer import MAX_TOKENS, PROMPT_WORDS, build_tokenizer
from generation.world.data import LABELS
from generation.world.vocabulary import world_words

IMAGE_SIZE = 64
LATENT_SIZE = 16
TEXT_WIDTH = 64
EMBEDDING_WIDTH = 64

# The tiny encoders' preprocessing (the hub models' normalisation), at the world's picture size.
_AT_WORLD_SIZE = {"size": {"shortest_edge": IMAGE_SIZE}, "crop_size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE}}
CLIP_PREPROCESSING = {**TINY_CLIP_PREPROCESSING, **_AT_WORLD_SIZE}
DINO_PREPROCESSING = {**TINY_DINO_PREPROCESSING, **_AT_WORLD_SIZE}


def world_tokenizer():
    """The evaluation prompts' words and the world's words are each one token."""
    return build_tokenizer([*PROMPT_WORDS, *world_words()])


def build_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(16, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=IMAGE_SIZE,
        mid_block_add_attention=False,
    )


def build_unet():
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=LATENT_SIZE,
        in_channels=4,
        out_channels=4,
        block_out_channels=(48, 96, 96),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=TEXT_WIDTH,
        attention_head_dim=(4, 8, 8),
        norm_num_groups=16,
        use_linear_projection=True,
    )


def build_text_encoder(tokenizer):
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=TEXT_WIDTH,
            intermediate_size=2 * TEXT_WIDTH,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=MAX_TOKENS,
            projection_dim=TEXT_WIDTH,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )


def build_clip(tokenizer):
    from transformers import CLIPConfig, CLIPModel

    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": EMBEDDING_WIDTH,
        "intermediate_size": 2 * EMBEDDING_WIDTH,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": MAX_TOKENS,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    vision = {
        "hidden_size": EMBEDDING_WIDTH,
        "intermediate_size": 2 * EMBEDDING_WIDTH,
        "num_hidden_layers": 3,
        "num_attention_heads": 4,
        "image_size": IMAGE_SIZE,
        "patch_size": 8,
    }
    return CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=EMBEDDING_WIDTH))


def build_dino():
    from transformers import Dinov2Config, Dinov2Model

    return Dinov2Model(
        Dinov2Config(
            hidden_size=EMBEDDING_WIDTH,
            num_hidden_layers=4,
            num_attention_heads=4,
            mlp_ratio=2,
            image_size=IMAGE_SIZE,
            patch_size=8,
        )
    )


def build_pipeline(vae, unet, text_encoder, tokenizer):
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline(
        vae=vae,
        unet=unet,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=tiny_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def write_preprocessing(folder: Path, settings: dict) -> None:
    (folder / "preprocessor_config.json").write_text(json.dumps(settings, indent=2) + "\n")


def head_sizes() -> dict[str, int]:
    return {head: len(values) for head, values in LABELS.items()}
