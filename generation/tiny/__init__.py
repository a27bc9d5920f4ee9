"""Randomly initialised, real-architecture models for offline tests and demos (nothing else knows they are tiny).

``pipeline``: a Stable Diffusion pipeline (``ensure_tiny_model``); ``backbones``: SD-XL and PixArt-alpha
pipelines (``ensure_tiny_sdxl``, ``ensure_tiny_pixart``); ``encoders``: CLIP and DINOv2
(``save_tiny_clip``, ``save_tiny_dino``); ``tokenizer``: the locally learnt tokenizers they share
(``build_tokenizer``, a CLIP BPE; ``build_t5_tokenizer``, a T5 SentencePiece Unigram).
"""

from generation.tiny.backbones import ensure_tiny_pixart, ensure_tiny_sdxl
from generation.tiny.encoders import save_tiny_clip, save_tiny_dino
from generation.tiny.pipeline import ensure_tiny_model
from generation.tiny.tokenizer import build_t5_tokenizer, build_tokenizer

__all__ = [
    "build_t5_tokenizer",
    "build_tokenizer",
    "ensure_tiny_model",
    "ensure_tiny_pixart",
    "ensure_tiny_sdxl",
    "save_tiny_clip",
    "save_tiny_dino",
]
