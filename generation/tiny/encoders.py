"""Tiny, randomly initialised CLIP and DINOv2 models for offline tests and demos.

Each model is a real transformers architecture with a small config, saved with
``save_pretrained`` together with its tokenizer and image-processor config, so it
loads through exactly the same ``from_pretrained`` path as the hub models
``openai/clip-vit-base-patch32`` and ``facebook/dinov2-small``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from generation.tiny.folders import build_once
from generation.tiny.tokenizer import MAX_TOKENS, PROMPT_WORDS, build_tokenizer

SEED = 0

CLIP_PREPROCESSING = {
    "image_processor_type": "CLIPImageProcessor",
    "do_resize": True,
    "size": {"shortest_edge": 32},
    "resample": 3,
    "do_center_crop": True,
    "crop_size": {"height": 32, "width": 32},
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": True,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "do_convert_rgb": True,
}

DINO_PREPROCESSING = {
    "image_processor_type": "BitImageProcessor",
    "do_resize": True,
    "size": {"shortest_edge": 64},
    "resample": 3,
    "do_center_crop": True,
    "crop_size": {"height": 56, "width": 56},
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": True,
    "image_mean": [0.485, 0.456, 0.406],
    "image_std": [0.229, 0.224, 0.225],
    "do_convert_rgb": True,
}


def save_tiny_clip(directory: str | os.PathLike) -> Path:
    """Write a tiny CLIPModel, its tokenizer and preprocessing config to ``directory/clip``."""
    return build_once(Path(directory) / "clip", _write_clip, _complete_check("clip"), last="config.json")


def save_tiny_dino(directory: str | os.PathLike) -> Path:
    """Write a tiny Dinov2Model and its preprocessing config to ``directory/dino``."""
    return build_once(Path(directory) / "dino", _write_dino, _complete_check("dinov2"), last="config.json")


def _complete_check(model_type: str):
    return lambda folder: _is_complete(folder, model_type)


def _is_complete(folder: Path, model_type: str) -> bool:
    config = folder / "config.json"
    if not (config.is_file() and (folder / "preprocessor_config.json").is_file()):
        return False
    try:
        return json.loads(config.read_text()).get("model_type") == model_type
    except ValueError:
        return False


def _write_clip(folder: Path) -> None:
    import torch
    from transformers import CLIPConfig, CLIPModel

    tokenizer = build_tokenizer(PROMPT_WORDS)
    text_config = {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 64,
        "projection_dim": 16,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "max_position_embeddings": MAX_TOKENS,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    vision_config = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "projection_dim": 16,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": CLIP_PREPROCESSING["crop_size"]["height"],
        "patch_size": 8,
    }
    config = CLIPConfig(text_config=text_config, vision_config=vision_config, projection_dim=16)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = CLIPModel(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    _write_preprocessing(folder, CLIP_PREPROCESSING)


def _write_dino(folder: Path) -> None:
    import torch
    from transformers import Dinov2Config, Dinov2Model

    config = Dinov2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        mlp_ratio=2,
        image_size=DINO_PREPROCESSING["crop_size"]["height"],
        patch_size=14,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = Dinov2Model(config).eval()
    model.save_pretrained(folder)
    _write_preprocessing(folder, DINO_PREPROCESSING)


def _write_preprocessing(folder: Path, settings: dict) -> None:
    (folder / "preprocessor_config.json").write_text(json.dumps(settings, indent=2) + "\n")
