"""Embedding images and texts with the tiny CLIP and DINO, and the errors for unusable models."""

from __future__ import annotations

import numpy as np
import pytest

from generation.errors import ModelLoadError
from generation.metrics import Embedder


def test_embedding_shapes_are_unit_rows(embedder, photos):
    from PIL import Image

    images = [Image.open(path).convert("RGB") for path in photos["generated"]]
    clip = embedder.embed_clip_images(images)
    dino = embedder.embed_dino_images(images)
    texts, truncated = embedder.embed_texts(["a sks dog", "a in the jungle"])
    assert (clip.shape, dino.shape, texts.shape) == ((5, 16), (5, 32), (2, 16))
    np.testing.assert_allclose(np.linalg.norm(np.concatenate([clip, texts]), axis=1), 1.0, atol=1e-6)
    assert truncated == [False, False]


def test_batched_embeddings_equal_one_by_one(embedder, photos):
    from PIL import Image

    images = [Image.open(path).convert("RGB") for path in photos["generated"]]
    batched = embedder.embed_clip_images(images)
    single = np.concatenate([embedder.embed_clip_images([image]) for image in images])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_long_prompt_truncation_is_reported(embedder):
    _, truncated = embedder.embed_texts(["a " + "red " * 80 + "dog", "a dog"])
    assert truncated == [True, False]


def test_missing_model_folder_names_the_path(tmp_path):
    with pytest.raises(ModelLoadError, match=f"CLIP model {tmp_path / 'absent'}: expected a folder with config.json"):
        Embedder(tmp_path / "absent", tmp_path / "absent")


def test_clip_folder_given_as_dino_model_is_rejected(tiny_encoders_dir, photos):
    swapped = Embedder(tiny_encoders_dir / "clip", tiny_encoders_dir / "clip")
    with pytest.raises(ModelLoadError, match="expected a DINOv2 model, got model_type 'clip'"):
        swapped.embed_dino_images([])
