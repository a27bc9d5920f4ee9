"""The images of check pairs: corrupted copies (gold) and grey squares (attention).

They are ordinary GeneratedImage rows under two hidden external methods, stored in the source image's
format and size with content-hash file names, so a rater cannot tell them from study images by URL,
size or format.
"""

import hashlib
import io

import numpy as np
from django.core.files.base import ContentFile
from PIL import Image, ImageFilter

from studyapp.models import GeneratedImage, GenerationRun, Method

GOLD_METHOD = "gold-corrupted"
ATTENTION_METHOD = "attention-grey"
CHECK_METHODS = (GOLD_METHOD, ATTENTION_METHOD)
ATTENTION_GREY = (128, 128, 128)
_DESCRIPTIONS = {
    GOLD_METHOD: "Corrupted copies of study images, for gold pairs on the overall question. Not a method.",
    ATTENTION_METHOD: "Plain grey squares, for attention checks. Not a method to compare.",
}


def check_method(name: str) -> Method:
    method, _ = Method.objects.get_or_create(
        name=name, defaults={"kind": Method.Kind.EXTERNAL, "sampler": "", "description": _DESCRIPTIONS[name]}
    )
    return method


def _check_run(method: Method, source_method: Method) -> GenerationRun:
    label = f"{method.name} for {source_method.name}"
    run = method.runs.filter(label=label).first()
    return run or GenerationRun.objects.create(method=method, label=label, state=GenerationRun.State.DONE)


def _source_format(source: GeneratedImage) -> str:
    extension = source.file.name.rsplit(".", 1)[-1].lower()
    return {"png": "PNG", "webp": "WEBP"}.get(extension, "JPEG")


def _encode_like(image: Image.Image, image_format: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **({"quality": 95} if image_format in ("JPEG", "WEBP") else {}))
    return buffer.getvalue()


def corrupt(data: bytes, image_format: str, seed: int) -> bytes:
    """Heavy blur, JPEG-5 blocking and grain, encoded back in the source's format and size."""
    with Image.open(io.BytesIO(data)) as opened:
        image = opened.convert("RGB")
    image = image.filter(ImageFilter.GaussianBlur(radius=max(2.0, max(image.size) / 60)))
    blocky = io.BytesIO()
    image.save(blocky, format="JPEG", quality=5)
    with Image.open(blocky) as reopened:
        pixels = np.asarray(reopened.convert("RGB"), dtype=np.float32)
    # Grain last, so that it shows even on smooth images, where blur and blocking change little.
    noise = np.random.default_rng(seed).normal(0, 30, pixels.shape)
    return _encode_like(Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8)), image_format)


def grey_square(width: int, height: int, image_format: str) -> bytes:
    return _encode_like(Image.new("RGB", (width, height), ATTENTION_GREY), image_format)


def _store_check_image(method: Method, source: GeneratedImage, data: bytes, image_format: str) -> GeneratedImage:
    run = _check_run(method, source.method)
    existing = GeneratedImage.objects.filter(
        run=run, concept_id=source.concept_id, prompt_id=source.prompt_id, seed_index=source.seed_index
    ).first()
    content_hash = hashlib.sha256(data).hexdigest()
    if existing is not None and existing.content_hash == content_hash:
        return existing
    if existing is not None:
        existing.delete()  # the source image was replaced; its old copy is stale
    image = GeneratedImage(
        run=run,
        method=method,
        concept_id=source.concept_id,
        prompt_id=source.prompt_id,
        seed_index=source.seed_index,
        seed=source.seed,
        content_hash=content_hash,
    )
    extension = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}[image_format]
    path = image.file.field.generate_filename(image, f"image.{extension}")
    if image.file.storage.exists(path):
        image.file.name = path  # same bytes already stored (e.g. a grey square of this size)
    else:
        image.file.save(f"image.{extension}", ContentFile(data), save=False)
    with Image.open(io.BytesIO(data)) as opened:
        image.width, image.height = opened.size
    image.save()
    return image


def corrupted_copy(source: GeneratedImage) -> GeneratedImage:
    image_format = _source_format(source)
    with source.file.open("rb") as handle:
        data = handle.read()
    seed = int(source.content_hash[:8], 16)
    return _store_check_image(check_method(GOLD_METHOD), source, corrupt(data, image_format, seed), image_format)


def grey_copy(source: GeneratedImage) -> GeneratedImage:
    image_format = _source_format(source)
    data = grey_square(source.width, source.height, image_format)
    return _store_check_image(check_method(ATTENTION_METHOD), source, data, image_format)
