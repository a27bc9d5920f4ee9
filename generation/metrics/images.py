"""Images to model inputs, following the reference evaluator's recipe without torchvision."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REFERENCE_RESOLUTION = 512


@dataclass(frozen=True)
class Preprocessing:
    """Resize the shorter side to ``resize``, centre-crop ``crop``, normalise."""

    resize: int
    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def from_image_processor(cls, processor) -> Preprocessing:
        size = processor.size
        resize = size.get("shortest_edge") or min(size.get("height", 0), size.get("width", 0))
        crop_size = processor.crop_size or {"height": resize}
        return cls(int(resize), int(crop_size["height"]), tuple(processor.image_mean), tuple(processor.image_std))


def resized_shape(height: int, width: int, shorter_side: int) -> tuple[int, int]:
    """Shorter side to ``shorter_side``, longer side scaled and truncated (torchvision's Resize(int))."""
    if height <= width:
        return shorter_side, int(shorter_side * width / height)
    return int(shorter_side * height / width), shorter_side


def crop_box(height: int, width: int, crop: int) -> tuple[int, int]:
    """Top-left corner of a centred crop (torchvision's rounding)."""
    return round((height - crop) / 2.0), round((width - crop) / 2.0)


def clip_pixels(image, preprocessing: Preprocessing, is_reference: bool) -> np.ndarray:
    """(3, crop, crop) float32: references squashed to 512x512 with PIL bicubic first, then
    a tensor bicubic resize with antialias off, centre crop and CLIP normalisation."""
    import torch
    from PIL import Image

    if is_reference:
        image = image.resize((REFERENCE_RESOLUTION, REFERENCE_RESOLUTION), Image.BICUBIC)
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    height, width = resized_shape(pixels.shape[-2], pixels.shape[-1], preprocessing.resize)
    if (height, width) != tuple(pixels.shape[-2:]):
        pixels = torch.nn.functional.interpolate(
            pixels, size=(height, width), mode="bicubic", align_corners=False, antialias=False
        )
    return _crop_and_normalise(pixels[0].numpy(), preprocessing)


def dino_pixels(image, preprocessing: Preprocessing) -> np.ndarray:
    """(3, crop, crop) float32: PIL bicubic resize (antialiased), centre crop, ImageNet normalisation."""
    from PIL import Image

    height, width = resized_shape(image.height, image.width, preprocessing.resize)
    resized = image.resize((width, height), Image.BICUBIC)
    pixels = np.asarray(resized, dtype=np.float32).transpose(2, 0, 1) / 255.0
    return _crop_and_normalise(pixels, preprocessing)


def _crop_and_normalise(pixels: np.ndarray, preprocessing: Preprocessing) -> np.ndarray:
    crop = preprocessing.crop
    _, height, width = pixels.shape
    if height < crop or width < crop:
        raise ValueError(f"image: expected at least {crop}x{crop} pixels after resizing, got {width}x{height}")
    top, left = crop_box(height, width, crop)
    pixels = pixels[:, top : top + crop, left : left + crop]
    mean = np.asarray(preprocessing.mean, dtype=np.float32)[:, None, None]
    std = np.asarray(preprocessing.std, dtype=np.float32)[:, None, None]
    return ((pixels - mean) / std).astype(np.float32)


def load_rgb(source) -> Any:
    """A PIL RGB image from a path or a PIL image; errors name the path."""
    from PIL import Image

    if isinstance(source, Image.Image):
        return source.convert("RGB")
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"image {path}: expected an image file, got nothing at that path")
    try:
        with Image.open(path) as opened:
            return opened.convert("RGB")
    except Exception as error:
        raise ValueError(f"image {path}: expected a readable image, got {type(error).__name__}: {error}") from error


def content_hash(source) -> str:
    """sha256 of a file's bytes, or of a PIL image's mode, size and pixels."""
    from PIL import Image

    digest = hashlib.sha256()
    if isinstance(source, Image.Image):
        digest.update(f"{source.mode}{source.size}".encode())
        digest.update(source.tobytes())
    else:
        digest.update(Path(source).read_bytes())
    return digest.hexdigest()
