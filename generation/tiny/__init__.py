"""Randomly initialised, real-architecture models for offline tests and demos (nothing else knows they are tiny).

``pipeline``: a Stable Diffusion pipeline (``ensure_tiny_model``); ``encoders``: CLIP and DINOv2
(``save_tiny_clip``, ``save_tiny_dino``); ``tokenizer``: the one locally learnt BPE tokenizer they
share (``build_tokenizer``).
"""

from generation.tiny.encoders import save_tiny_clip, save_tiny_dino
from generation.tiny.pipeline import ensure_tiny_model
from generation.tiny.tokenizer import build_tokenizer

__all__ = ["build_tokenizer", "ensure_tiny_model", "save_tiny_clip", "save_tiny_dino"]
