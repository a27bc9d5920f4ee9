"""Cosines and similarities on constructed embeddings."""

from __future__ import annotations

import math

import numpy as np
import pytest

from generation.metrics import arithmetic

SQRT_HALF = math.sqrt(0.5)


def test_cosine_matrix_of_known_vectors():
    left = np.array([[1.0, 0.0], [0.0, 2.0]])
    right = np.array([[3.0, 0.0], [1.0, 1.0], [0.0, -1.0]])
    expected = np.array([[1.0, SQRT_HALF, 0.0], [0.0, SQRT_HALF, -1.0]])
    np.testing.assert_allclose(arithmetic.cosine_matrix(left, right), expected, atol=1e-12)


def test_image_similarity_is_mean_over_all_reference_generated_pairs():
    references = np.array([[1.0, 0.0], [0.0, 1.0]])
    generated = np.array([[5.0, 0.0], [1.0, 1.0]])
    # cosines: [[1, sqrt(1/2)], [0, sqrt(1/2)]]
    assert arithmetic.image_similarity(references, generated) == pytest.approx((1 + 2 * SQRT_HALF) / 4, abs=1e-12)
    per_image = arithmetic.per_image_similarity(references, generated)
    np.testing.assert_allclose(per_image, [0.5, SQRT_HALF], atol=1e-12)
    assert per_image.mean() == pytest.approx(arithmetic.image_similarity(references, generated), abs=1e-12)


def test_text_similarity_pairs_rows():
    texts = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    images = np.array([[2.0, 0.0], [1.0, 0.0], [-1.0, -1.0]])
    np.testing.assert_allclose(arithmetic.text_similarity(texts, images), [1.0, 0.0, -1.0], atol=1e-12)


def test_zero_embedding_is_rejected():
    with pytest.raises(ValueError, match="non-zero"):
        arithmetic.l2_normalize(np.zeros((1, 3)))
