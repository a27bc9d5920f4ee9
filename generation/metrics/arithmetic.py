"""Arithmetic on embeddings: cosines, the image similarity of a reference set, text similarity."""

from __future__ import annotations

import numpy as np


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length."""
    vectors = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError("embeddings: expected non-zero vectors, got a zero row")
    return vectors / norms


def cosine_matrix(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """(L, D) x (R, D) -> (L, R) matrix of cosines."""
    return l2_normalize(np.atleast_2d(left)) @ l2_normalize(np.atleast_2d(right)).T


def image_similarity(references: np.ndarray, generated: np.ndarray) -> float:
    """Mean of the full reference-by-generated cosine matrix (the reference IS of one prompt)."""
    return float(cosine_matrix(references, generated).mean())


def per_image_similarity(references: np.ndarray, generated: np.ndarray) -> np.ndarray:
    """Per generated image, the mean cosine to all references; their mean equals ``image_similarity``."""
    return cosine_matrix(references, generated).mean(axis=0)


def text_similarity(texts: np.ndarray, images: np.ndarray) -> np.ndarray:
    """Row-wise cosine between paired text and image embeddings."""
    return np.sum(l2_normalize(texts) * l2_normalize(images), axis=-1)
