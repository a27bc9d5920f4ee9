"""Turn a slot of a generation run into stored images, each exactly once.

`run_batch` is the body of the Celery task (studyapp.tasks): it claims the batch's lease, generates the
images that do not exist yet and stores each one; `generate_batch` is the same without a batch row,
for the demo. A retried or duplicated task finds the finished images and skips them.
"""

import hashlib
import io
import logging
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from studyapp.models import Concept, GeneratedImage, GenerationBatch, GenerationRun, Prompt, generated_upload_to

log = logging.getLogger(__name__)

# How often a running batch tells the database it is alive (and checks it was not cancelled).
HEARTBEAT_SECONDS = 5.0


def resolve_model(base_model: str = "") -> str:
    """The method's base model, else GENERATION_MODEL, else the offline tiny model (built on first use)."""
    if base_model:
        return base_model
    if settings.GENERATION_MODEL:
        return settings.GENERATION_MODEL
    from generation.tiny import ensure_tiny_model

    return str(ensure_tiny_model(settings.TINY_MODEL_DIR))


@dataclass(frozen=True)
class BatchResult:
    created: int
    skipped: int


class LeaseLost(Exception):
    """The batch was cancelled, or handed to another worker, while this one was generating it."""


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def missing_seed_indices(run: GenerationRun, concept: Concept, prompt: Prompt, seed_indices: list[int]) -> list[int]:
    done = set(
        GeneratedImage.objects.filter(run=run, concept=concept, prompt=prompt, seed_index__in=seed_indices).values_list(
            "seed_index", flat=True
        )
    )
    return [index for index in seed_indices if index not in done]


def images_per_call() -> int:
    """Seeds generated per library call: each call's images are stored before the next call starts."""
    return max(1, int(getattr(settings, "GENERATION_IMAGES_PER_CALL", 4)))


# ---------------------------------------------------------------- model switching

_loaded_model: tuple | None = None


def switch_model(model: str, personalization: str | None) -> None:
    """Keep one model per worker process: a different model frees the cached one (and its GPU memory) first."""
    global _loaded_model
    key = (model, personalization)
    if _loaded_model is not None and _loaded_model != key:
        from generation.models import clear_cache

        log.info("switching model %s -> %s: clearing the model cache", _loaded_model, key)
        clear_cache()
        _free_accelerator_memory()
    _loaded_model = key


def _free_accelerator_memory() -> None:
    import gc

    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ---------------------------------------------------------------- generation


def build_request(run: GenerationRun, concept: Concept, prompt: Prompt, seed_indices: list[int]):
    from generation.api import GenerationRequest

    method = run.method
    return GenerationRequest(
        model=resolve_model(method.base_model),
        personalization=method.personalization_for(concept) or None,
        concept_token=concept.concept_token,
        superclass=concept.superclass,
        prompt_template=prompt.template,
        sampler=method.sampler,
        params=run.params or method.params,
        seed_indices=seed_indices,
        steps=run.steps,
        device=settings.GENERATION_DEVICE,
    )


def generate_missing(run: GenerationRun, concept: Concept, prompt: Prompt, seed_indices: list[int], progress=None) -> BatchResult:
    """Generate the images of one (run, concept, prompt) that do not exist yet; store each as soon as it exists."""
    from generation.api import generate

    todo = missing_seed_indices(run, concept, prompt, seed_indices)
    created = 0
    chunk = images_per_call()
    for start in range(0, len(todo), chunk):
        request = build_request(run, concept, prompt, todo[start : start + chunk])
        switch_model(request.model, request.personalization)
        for sample in generate(request, progress=progress):
            created += store_sample(run, concept, prompt, sample)
    return BatchResult(created=created, skipped=len(seed_indices) - created)


def generate_batch(run_id: int, concept_id: int, prompt_id: int, seed_indices: list[int], progress=None) -> BatchResult:
    """Generate and store the missing images of one (run, concept, prompt), without a batch row (demo, scripts)."""
    run = GenerationRun.objects.select_related("method").get(pk=run_id)
    concept = Concept.objects.get(pk=concept_id)
    prompt = Prompt.objects.get(pk=prompt_id)
    return generate_missing(run, concept, prompt, list(seed_indices), progress=progress)


# ---------------------------------------------------------------- the task body


def claim_batch(batch_id: int, worker: str, lease_seconds: float) -> bool:
    """Take the batch's lease: it must be queued, or running with a heartbeat older than the lease.

    A batch that has used up its attempts is left for the reconciler to mark failed, which stops a
    batch that kills its worker (out of memory, say) from being redelivered forever.
    """
    now = timezone.now()
    stale = now - timedelta(seconds=lease_seconds)
    free = GenerationBatch.objects.filter(pk=batch_id, attempts__lt=max_attempts()).filter(
        Q(state=GenerationBatch.State.QUEUED) | Q(state=GenerationBatch.State.RUNNING, heartbeat__lt=stale)
    )
    claimed = free.update(
        state=GenerationBatch.State.RUNNING,
        worker=worker,
        heartbeat=now,
        started=now,
        attempts=F("attempts") + 1,
        error="",
    )
    return claimed == 1


class Heartbeat:
    """A progress callback that renews the lease every few seconds and stops the batch when it is lost."""

    def __init__(self, batch_id: int, worker: str, every: float | None = None):
        self.batch_id, self.worker = batch_id, worker
        self.every = HEARTBEAT_SECONDS if every is None else every
        self.last = timezone.now()

    def __call__(self, *progress) -> None:
        now = timezone.now()
        if (now - self.last).total_seconds() < self.every:
            return
        self.last = now
        renewed = GenerationBatch.objects.filter(
            pk=self.batch_id, state=GenerationBatch.State.RUNNING, worker=self.worker
        ).update(heartbeat=now)
        if not renewed:
            raise LeaseLost(f"batch {self.batch_id}: cancelled or taken over by another worker")


def max_attempts() -> int:
    return int(getattr(settings, "GENERATION_MAX_ATTEMPTS", 3))


def lease_seconds() -> float:
    return float(getattr(settings, "GENERATION_LEASE_SECONDS", 600))


def run_batch(batch_id: int, worker: str | None = None) -> BatchResult | None:
    """Generate one batch under a lease. Returns None when there was nothing for this worker to do."""
    from studyapp import runs

    worker = worker or worker_name()
    batch = GenerationBatch.objects.filter(pk=batch_id).select_related("run__method", "concept", "prompt").first()
    if batch is None or batch.state in (GenerationBatch.State.DONE, GenerationBatch.State.CANCELLED):
        return None
    if not claim_batch(batch_id, worker, lease_seconds()):
        log.info("batch %s is done, cancelled or held by another worker: skipped", batch_id)
        return None
    runs.mark_run_started(batch.run_id)
    try:
        result = generate_missing(batch.run, batch.concept, batch.prompt, batch.seed_indices, progress=Heartbeat(batch_id, worker))
    except LeaseLost as exc:
        log.info("%s", exc)
        return None
    except Exception as exc:  # recorded on the batch and its run; the message is what the page shows
        log.exception("batch %s failed", batch_id)
        runs.finish_batch(batch_id, worker, GenerationBatch.State.FAILED, f"{type(exc).__name__}: {exc}")
        return None
    missing = missing_seed_indices(batch.run, batch.concept, batch.prompt, batch.seed_indices)
    if missing:
        runs.finish_batch(batch_id, worker, GenerationBatch.State.FAILED, f"no image came back for seed indices {missing}")
        return result
    runs.finish_batch(batch_id, worker, GenerationBatch.State.DONE)
    return result


# ---------------------------------------------------------------- storing


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
