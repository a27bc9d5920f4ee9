"""The tiny CLIP and DINOv2: real architectures saved in the hub layout, built once, safely in parallel."""

from __future__ import annotations

import threading

from generation.tiny import save_tiny_clip, save_tiny_dino
from generation.tiny.tokenizer import PROMPT_WORDS


def test_tiny_models_load_through_from_pretrained(tiny_encoders_dir):
    from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel, Dinov2Model

    assert CLIPModel.from_pretrained(tiny_encoders_dir / "clip").config.projection_dim == 16
    assert Dinov2Model.from_pretrained(tiny_encoders_dir / "dino").config.hidden_size == 32
    assert AutoImageProcessor.from_pretrained(tiny_encoders_dir / "dino").crop_size["height"] == 56
    tokenizer = AutoTokenizer.from_pretrained(tiny_encoders_dir / "clip")
    tokens = tokenizer.tokenize(" ".join(PROMPT_WORDS))
    assert tokens == [word + "</w>" for word in PROMPT_WORDS]


def test_saving_again_keeps_the_existing_model(tiny_encoders_dir):
    weights = tiny_encoders_dir / "clip" / "model.safetensors"
    before = weights.stat().st_mtime_ns
    assert save_tiny_clip(tiny_encoders_dir) == tiny_encoders_dir / "clip"
    assert weights.stat().st_mtime_ns == before


def test_concurrent_saves_end_with_one_complete_model(tmp_path):
    results = []
    threads = [threading.Thread(target=lambda: results.append(save_tiny_dino(tmp_path))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [tmp_path / "dino"] * 2
    assert [path.name for path in tmp_path.iterdir()] == ["dino"]
