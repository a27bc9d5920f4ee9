"""The subject's photos: checked, decoded, cropped to the training size; the data order per step."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from generation.errors import FineTuneError

MIN_PHOTOS = 3
MAX_PHOTOS = 1000
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


def photos_in(folder: str | os.PathLike) -> list[Path]:
    """The image files (by suffix) directly in ``folder``, sorted by name."""
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise FineTuneError(f"photos {path}: expected a folder of JPEG/PNG/WebP photos, found {_what(path)}")
    return sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _what(path: Path) -> str:
    return "a file" if path.is_file() else "nothing"


def load_photos(paths: Sequence[str | os.PathLike]) -> tuple[list[Path], list]:
    """(paths, RGB images with EXIF orientation applied); FineTuneError names the first bad photo."""
    from PIL import Image, ImageOps

    if isinstance(paths, (str, os.PathLike)):
        raise FineTuneError("photos: expected a list of photo paths, got a single path")
    paths = [Path(p).expanduser() for p in paths]
    if not MIN_PHOTOS <= len(paths) <= MAX_PHOTOS:
        raise FineTuneError(f"photos: expected {MIN_PHOTOS} to {MAX_PHOTOS} photos of the subject, got {len(paths)}")
    images = []
    for path in paths:
        try:
            with Image.open(path) as image:
                image.load()
                images.append(ImageOps.exif_transpose(image).convert("RGB"))
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise FineTuneError(
                f"photo {path}: expected a JPEG, PNG or WebP image; could not decode it: {exc}"
            ) from exc
    return paths, images


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def to_tensor(image, resolution: int):
    """Resize the short side to ``resolution``, centre-crop a square, scale to [-1, 1]: (3, H, W) float32."""
    import numpy as np
    import torch
    from PIL import Image

    width, height = image.size
    scale = resolution / min(width, height)
    size = (max(resolution, round(width * scale)), max(resolution, round(height * scale)))
    resized = image.resize(size, Image.Resampling.BILINEAR)
    left, top = (size[0] - resolution) // 2, (size[1] - resolution) // 2
    square = resized.crop((left, top, left + resolution, top + resolution))
    array = np.asarray(square, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def mix(*parts) -> int:
    """A 63-bit seed that is a pure function of its parts (the run's seed, a stream name, a counter)."""
    text = ":".join(str(part) for part in parts).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big") & (2**63 - 1)


def sample_index(seed: int, stream: str, position: int, count: int) -> int:
    """The photo shown at ``position`` of a stream: epochs of seeded permutations, so every photo is seen
    equally often and the order depends only on (seed, position) - a resumed run sees the same data."""
    import torch

    epoch, offset = divmod(position, count)
    generator = torch.Generator().manual_seed(mix(seed, stream, "epoch", epoch))
    return int(torch.randperm(count, generator=generator)[offset])
