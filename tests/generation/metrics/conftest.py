"""Fixtures of the metrics tests: an embedder over the tiny encoders, and a few photos."""

from __future__ import annotations

import pytest

from generation.metrics import Embedder
from tests.generation.metrics_fixtures import write_images


@pytest.fixture(scope="module")
def embedder(tiny_encoders_dir):
    return Embedder(tiny_encoders_dir / "clip", tiny_encoders_dir / "dino", batch_size=4)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    return {
        "references": write_images(folder / "references", 3, size=(80, 60), seed=1, suffix=".jpg"),
        "generated": write_images(folder / "generated", 5, size=(64, 64), seed=2),
    }
