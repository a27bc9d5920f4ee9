"""Validation of image files coming from people or other code: uploads, datasets, manifests."""

import hashlib
import io
import warnings
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from PIL import Image, ImageOps, UnidentifiedImageError

ALLOWED_FORMATS = {"JPEG", "PNG", "WEBP"}


@dataclass(frozen=True)
class CheckedImage:
    """An image that passed validation, re-encoded with EXIF orientation applied."""

    data: bytes
    extension: str
    width: int
    height: int

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def check_image_bytes(raw: bytes, name: str = "upload") -> CheckedImage:
    """Decode fully, refuse non-images, truncated files and decompression bombs; apply EXIF rotation."""
    if len(raw) > settings.MAX_UPLOAD_BYTES:
        raise ValidationError(f"{name}: file is {len(raw):,} bytes, the limit is {settings.MAX_UPLOAD_BYTES:,}")
    try:
        image = _decode(raw)
    except ValidationError as exc:
        raise ValidationError(f"{name}: {exc.messages[0]}") from None
    output_format = _output_format(image)
    image = ImageOps.exif_transpose(image)
    return _encode(image, image_format=output_format)


def _decode(raw: bytes) -> Image.Image:
    limit = settings.MAX_IMAGE_PIXELS
    try:
        with Image.open(io.BytesIO(raw)) as probe:
            image_format = probe.format
            width, height = probe.size
        if image_format not in ALLOWED_FORMATS:
            raise ValidationError(f"expected a JPEG, PNG or WebP image, got {image_format or 'an unknown format'}")
        if width * height > limit:
            raise ValidationError(f"{width}x{height} is {width * height:,} pixels, the limit is {limit:,}")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(raw))
            image.load()
    except UnidentifiedImageError:
        raise ValidationError("not an image that can be read (expected JPEG, PNG or WebP)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ValidationError("refused: the image decompresses to too many pixels") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValidationError(f"the image is damaged or truncated ({exc})") from None
    return image


def _output_format(image: Image.Image) -> str:
    return "PNG" if image.mode in ("RGBA", "LA", "P") or image.format == "PNG" else "JPEG"


def _encode(image: Image.Image, image_format: str) -> CheckedImage:
    if image_format == "JPEG" and image.mode != "RGB":
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **({"quality": 95} if image_format == "JPEG" else {}))
    extension = "png" if image_format == "PNG" else "jpg"
    return CheckedImage(buffer.getvalue(), extension, image.width, image.height)
