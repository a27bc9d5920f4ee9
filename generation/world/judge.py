"""The judge: a small classifier that reads shape, colour, pattern, scene and subject off a picture.

It stands in for a person looking at an image: the oracle raters answer from its view, and the world's
measurements (prompt following, subject fidelity) are its accuracies. Saved as ``judge.safetensors``
plus ``config.json`` with the label names of each head.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from generation.errors import ModelLoadError
from generation.world.data import LABELS

WEIGHTS = "judge.safetensors"
CONFIG = "config.json"


def build_network(widths: Sequence[int] = (32, 64, 96, 128)):
    from torch import nn

    class JudgeNetwork(nn.Module):
        def __init__(self):
            super().__init__()
            layers, channels = [], 3
            for width in widths:
                layers += [
                    nn.Conv2d(channels, width, 3, padding=1),
                    nn.GroupNorm(8, width),
                    nn.SiLU(),
                    nn.Conv2d(width, width, 3, stride=2, padding=1),
                    nn.SiLU(),
                ]
                channels = width
            self.features = nn.Sequential(*layers)
            self.heads = nn.ModuleDict({head: nn.Linear(channels, len(values)) for head, values in LABELS.items()})

        def forward(self, pixels):
            pooled = self.features(pixels).mean((2, 3))
            return {head: layer(pooled) for head, layer in self.heads.items()}

    return JudgeNetwork()


def pixels_of(images) -> np.ndarray:
    """PIL images or (N, H, W, 3) uint8 -> (N, 3, 64, 64) float32 in [-1, 1]."""
    from PIL import Image

    if isinstance(images, np.ndarray):
        array = images
    else:
        array = np.stack(
            [np.asarray(image.convert("RGB").resize((64, 64), Image.Resampling.BICUBIC)) for image in images]
        )
    return (array.astype(np.float32) / 127.5 - 1.0).transpose(0, 3, 1, 2)


class Judge:
    """Loads a saved judge and reports, per picture, the probability of every label of every head."""

    def __init__(self, folder: str | Path, device: str = "cpu"):
        import torch
        from safetensors.torch import load_file

        folder = Path(folder)
        if not (folder / WEIGHTS).is_file():
            raise ModelLoadError(f"judge {folder}: expected {WEIGHTS} and {CONFIG}, found no {WEIGHTS}")
        config = json.loads((folder / CONFIG).read_text())
        if config.get("labels") != {head: list(values) for head, values in LABELS.items()}:
            raise ModelLoadError(f"judge {folder}: its labels differ from this world's")
        self.network = build_network(config["widths"])
        self.network.load_state_dict(load_file(folder / WEIGHTS))
        self.network.to(device).eval()
        self.device = device
        self._torch = torch

    def probabilities(self, images, batch_size: int = 256) -> dict[str, np.ndarray]:
        """head -> (N, labels) probabilities."""
        pixels = pixels_of(images)
        parts: dict[str, list[np.ndarray]] = {head: [] for head in LABELS}
        with self._torch.inference_mode():
            for start in range(0, len(pixels), batch_size):
                batch = self._torch.from_numpy(pixels[start : start + batch_size]).to(self.device)
                for head, logits in self.network(batch).items():
                    parts[head].append(logits.softmax(-1).float().cpu().numpy())
        return {head: np.concatenate(values) for head, values in parts.items()}

    def read(self, images) -> list[dict[str, str]]:
        """The most likely label of each head, per picture."""
        probabilities = self.probabilities(images)
        count = len(next(iter(probabilities.values())))
        return [
            {head: LABELS[head][int(p[index].argmax())] for head, p in probabilities.items()} for index in range(count)
        ]
