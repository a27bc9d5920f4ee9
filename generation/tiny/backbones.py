"""Tiny, randomly initialised SD-XL and PixArt-alpha pipelines with the real architectures, built offline.

Like ``generation.tiny.pipeline`` (the SD-2-style one), every component is the real diffusers or
transformers class with small widths, saved in the diffusers layout and loaded back through
``from_pretrained``:

* SD-XL: a ``UNet2DConditionModel`` with ``text_time`` added conditioning (pooled text embedding plus
  six time ids), ``CLIPTextModel`` and ``CLIPTextModelWithProjection`` with the locally built BPE
  tokenizer twice, ``StableDiffusionXLPipeline``;
* PixArt-alpha: a ``PixArtTransformer2DModel`` (learned sigma, adaLN-single), a ``T5EncoderModel``
  with the locally built SentencePiece tokenizer (120 tokens, padding masked), ``PixArtAlphaPipeline``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from generation.tiny.folders import build_once
from generation.tiny.pipeline import IMAGE_SIZE, LATENT_SIZE, TEXT_WIDTH, tiny_scheduler, tiny_vae
from generation.tiny.tokenizer import MAX_TOKENS, PROMPT_WORDS, build_t5_tokenizer, build_tokenizer

TIME_EMBED_WIDTH = 8
SDXL_TIME_IDS = 6


def _clip_text_config(tokenizer, seed: int):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
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


def build_sdxl_components(seed: int = 0) -> dict:
    import torch
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    tokenizer = build_tokenizer(PROMPT_WORDS)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=LATENT_SIZE,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 2),
        cross_attention_dim=2 * TEXT_WIDTH,  # both encoders' hidden states, concatenated
        attention_head_dim=(2, 4),
        norm_num_groups=8,
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=TIME_EMBED_WIDTH,
        projection_class_embeddings_input_dim=SDXL_TIME_IDS * TIME_EMBED_WIDTH + TEXT_WIDTH,
    )
    torch.manual_seed(seed + 1)
    vae = tiny_vae()
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(_clip_text_config(tokenizer, seed))
    torch.manual_seed(seed + 3)
    text_encoder_2 = CLIPTextModelWithProjection(_clip_text_config(tokenizer, seed))
    return {
        "unet": unet,
        "vae": vae,
        "text_encoder": text_encoder,
        "text_encoder_2": text_encoder_2,
        "tokenizer": tokenizer,
        "tokenizer_2": build_tokenizer(PROMPT_WORDS),
        "scheduler": tiny_scheduler(),
    }


def build_pixart_components(seed: int = 0) -> dict:
    import torch
    from diffusers import PixArtTransformer2DModel
    from transformers import T5Config, T5EncoderModel

    tokenizer = build_t5_tokenizer(PROMPT_WORDS)
    torch.manual_seed(seed)
    transformer = PixArtTransformer2DModel(
        sample_size=LATENT_SIZE,
        num_layers=2,
        patch_size=2,
        attention_head_dim=8,
        num_attention_heads=3,
        caption_channels=TEXT_WIDTH,
        in_channels=4,
        out_channels=8,  # learned sigma: the first 4 channels are the noise prediction
        cross_attention_dim=24,
        attention_bias=True,
        activation_fn="gelu-approximate",
        num_embeds_ada_norm=1000,
        norm_type="ada_norm_single",
        norm_elementwise_affine=False,
        norm_eps=1e-6,
    )
    torch.manual_seed(seed + 1)
    vae = tiny_vae()
    torch.manual_seed(seed + 2)
    text_encoder = T5EncoderModel(
        T5Config(
            vocab_size=len(tokenizer),
            d_model=TEXT_WIDTH,
            d_kv=8,
            d_ff=64,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    )
    return {
        "transformer": transformer,
        "vae": vae,
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "scheduler": tiny_scheduler(),
    }


def save_tiny_sdxl(directory: Path, seed: int = 0) -> None:
    from diffusers import StableDiffusionXLPipeline

    pipeline = StableDiffusionXLPipeline(**build_sdxl_components(seed), add_watermarker=False)
    pipeline.save_pretrained(directory, safe_serialization=True)
    _write_marker(directory, "sdxl", seed)


def save_tiny_pixart(directory: Path, seed: int = 0) -> None:
    from diffusers import PixArtAlphaPipeline

    pipeline = PixArtAlphaPipeline(**build_pixart_components(seed))
    pipeline.save_pretrained(directory, safe_serialization=True)
    _write_marker(directory, "pixart_alpha", seed)


def _write_marker(directory: Path, backbone: str, seed: int) -> None:
    note = {"backbone": backbone, "image_size": IMAGE_SIZE, "seed": seed, "note": "random weights"}
    (directory / "TINY_MODEL.json").write_text(json.dumps(note, indent=2) + "\n")


def ensure_tiny_sdxl(directory: str | os.PathLike) -> Path:
    """Build the tiny SD-XL pipeline at ``directory`` unless it is already there; return the folder."""
    return build_once(Path(directory), save_tiny_sdxl, _has_model_index, last="model_index.json")


def ensure_tiny_pixart(directory: str | os.PathLike) -> Path:
    """Build the tiny PixArt-alpha pipeline at ``directory`` unless it is already there; return the folder."""
    return build_once(Path(directory), save_tiny_pixart, _has_model_index, last="model_index.json")


def _has_model_index(folder: Path) -> bool:
    return (folder / "model_index.json").is_file()
