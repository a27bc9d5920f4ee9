"""Small images, sidecars and summary rows shared by the metrics and Pareto tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def write_images(
    folder: Path, count: int, size: tuple[int, int] = (64, 64), seed: int = 0, suffix: str = ".png"
) -> list[Path]:
    """``count`` random RGB images of ``size`` (width, height) written to ``folder``."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
        path = folder / f"{index:02d}{suffix}"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


def write_sidecar(image: Path, **overrides) -> Path:
    """The JSON the sampler CLI writes next to each image."""
    sidecar = {
        "prompt_template": "a {concept} in the jungle",
        "concept_token": "sks",
        "superclass": "dog",
        "sampler": "mixed",
        "params": {"w_c": 3.5, "w_s": 3.5},
        "seed_index": int(image.stem) if image.stem.isdigit() else 0,
    }
    sidecar.update(overrides)
    path = image.with_suffix(".json")
    path.write_text(json.dumps(sidecar))
    return path


def summary_row(method: str, clip_ts: float, clip_is: float, dino_is: float = 0.5) -> dict:
    """A metrics-results summary row over all concepts and prompt sets."""
    values = {
        "clip_is": clip_is,
        "dino_is": dino_is,
        "clip_ts": clip_ts,
        "clip_ts_without_class": clip_ts,
        "clip_ts_with_class": clip_ts + 0.01,
    }
    return {
        "method": method,
        "category": "*",
        "concept": "*",
        "prompt_set": "*",
        "n_images": 10,
        "n_prompts": 1,
        "n_concepts": 1,
        "n_errors": 0,
        "metrics": {name: {"mean": value, "std": 0.0} for name, value in values.items()},
    }
