"""What a rater receives for a pair image: one encoding for every source, so only the pixels differ.

Generated, imported, gold and attention images arrive in different formats, sizes and with
different metadata (an imported JPEG may carry a comment naming its method). Each is decoded,
cropped and scaled to the study's square display size, and encoded as a baseline JPEG of one
quality with nothing but the JFIF header: same content type, same pixel size, no comment, EXIF,
ICC profile or text chunk. The result is stored once per source file and size, so serving an
image is a file read, not an encode.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path

from django.core.files.base import ContentFile
from django.core.files.storage import Storage
from PIL import Image, ImageOps

CONTENT_TYPE = "image/jpeg"
QUALITY = 90
RECIPE = "display-v1"  # part of the cached name: changing the encoding below needs a new recipe name
BACKGROUND = (255, 255, 255)  # transparent areas are flattened onto white


def normalised(data: bytes, size: int) -> bytes:
    """The image in `data` as raters see it: a `size` x `size` JPEG without metadata."""
    with Image.open(io.BytesIO(data)) as opened:
        if opened.format == "JPEG":
            opened.draft("RGB", (size, size))  # decode big JPEGs at a reduced scale; the crop below is exact
        upright = ImageOps.exif_transpose(opened)
        rgb = _flattened(upright)
    fitted = ImageOps.fit(rgb, (size, size), method=Image.Resampling.LANCZOS)
    # A fresh image carries no `info` (comments, EXIF, ICC, dpi), so the encoder has nothing to copy.
    clean = Image.frombytes("RGB", fitted.size, fitted.tobytes())
    buffer = io.BytesIO()
    clean.save(buffer, format="JPEG", quality=QUALITY, subsampling="4:2:0", optimize=False, progressive=False)
    return buffer.getvalue()


def _flattened(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def display_name(source_name: str, size: int) -> str:
    """Where the normalised copy of a stored file lives; stored files never change, so the name is the key."""
    key = hashlib.sha256(f"{RECIPE}:{size}:{source_name}".encode()).hexdigest()
    return f"display/{key[:2]}/{key}.jpg"


def display_copy(field_file, size: int):
    """An open binary file of the normalised image, made and stored on first use."""
    storage = field_file.storage
    name = display_name(field_file.name, size)
    try:
        return storage.open(name, "rb")
    except FileNotFoundError:
        pass
    with field_file.open("rb") as source:
        data = normalised(source.read(), size)
    _store(storage, name, data)
    return io.BytesIO(data)


def _store(storage: Storage, name: str, data: bytes) -> None:
    """Write the copy so that a concurrent reader sees all of it or nothing (two workers may race here)."""
    try:
        path = Path(storage.path(name))
    except NotImplementedError:  # remote storage: its own save is atomic per object
        if not storage.exists(name):
            storage.save(name, ContentFile(data))
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".part-", delete=False) as part:
        part.write(data)
    os.chmod(part.name, 0o644)
    os.replace(part.name, path)
