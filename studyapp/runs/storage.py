"""Storing a generated image: the file under its content hash, then the row; each slot exactly once."""

import hashlib
import io
import logging
import os
import uuid

from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction

from studyapp.models import Concept, GeneratedImage, GenerationRun, Prompt, generated_upload_to

log = logging.getLogger(__name__)


def png_data(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_file_once(name: str, data: bytes) -> str:
    """Store content-addressed bytes under `name`; a reader never sees a partial file.

    On a local disk the bytes go to a temporary name in the same folder and are renamed into place
    (atomic on POSIX); since the name is the content's hash, a file already there is the same image.
    Other storages (S3-like) publish an object only when its upload completes.
    """
    storage = default_storage
    if storage.exists(name):
        return name
    try:
        final_path = storage.path(name)
    except NotImplementedError:
        return storage.save(name, io.BytesIO(data))
    os.makedirs(os.path.dirname(final_path), exist_ok=True)
    temporary = f"{final_path}.{uuid.uuid4().hex}.part"
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, final_path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return name


def store_sample(run: GenerationRun, concept: Concept, prompt: Prompt, sample) -> bool:
    """Write one image; False if the slot was already stored (by a duplicate task or another worker)."""
    data = png_data(sample.image)
    image = GeneratedImage(
        run=run,
        method=run.method,
        concept=concept,
        prompt=prompt,
        seed_index=sample.seed_index,
        seed=sample.seed,
        params=sample.params,
        unet_evaluations=sample.unet_evaluations,
        wall_time=sample.wall_time,
        content_hash=hashlib.sha256(data).hexdigest(),
    )
    image.file.name = write_file_once(generated_upload_to(image, "image.png"), data)
    image.width, image.height = sample.image.size
    try:
        with transaction.atomic():
            image.save()
    except IntegrityError:
        if not GeneratedImage.objects.filter(file=image.file.name).exists():
            default_storage.delete(image.file.name)
        log.info("slot %s/%s/%s/%s was already stored", run.pk, concept.pk, prompt.pk, sample.seed_index)
        return False
    return True
