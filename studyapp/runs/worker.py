"""The worker-side job: turn one batch of a run into stored images, each exactly once.

`run_batch` is the body of the Celery task (studyapp.tasks.generate_batch): it claims the batch's lease,
generates the images that do not exist yet and stores each one; `generate_batch` is the same without a
batch row, for the demo. A retried or duplicated task finds the finished images and skips them.
Models stay loaded between batches in the generation library's own pipeline cache.
"""

import logging
from dataclasses import dataclass

from django.conf import settings

from studyapp.models import Concept, GeneratedImage, GenerationBatch, GenerationRun, Prompt
from studyapp.runs.leases import (
    Heartbeat,
    LeaseLost,
    claim_batch,
    claim_companions,
    lease_seconds,
    release_batches,
    worker_name,
)
from studyapp.runs.state import finish_batch, mark_run_started
from studyapp.runs.storage import store_sample

log = logging.getLogger(__name__)

Batch = GenerationBatch.State


@dataclass(frozen=True)
class BatchResult:
    created: int
    skipped: int


def resolve_model(base_model: str = "") -> str:
    """The method's base model, else GENERATION_MODEL, else the offline model OFFLINE_MODELS names (the
    world's shipped pipeline, or the tiny one, built on first use)."""
    if base_model:
        return base_model
    if settings.GENERATION_MODEL:
        return settings.GENERATION_MODEL
    if settings.OFFLINE_MODELS == "world":
        from generation.world.paths import PIPELINE

        return str(PIPELINE)
    from generation.tiny import ensure_tiny_model

    return str(ensure_tiny_model(settings.TINY_MODEL_DIR))


def missing_seed_indices(run: GenerationRun, concept: Concept, prompt: Prompt, seed_indices: list[int]) -> list[int]:
    stored = GeneratedImage.objects.filter(run=run, concept=concept, prompt=prompt, seed_index__in=seed_indices)
    done = set(stored.values_list("seed_index", flat=True))
    return [index for index in seed_indices if index not in done]


def speed_options():
    """The GPU speed paths this worker's settings turn on (none by default)."""
    from generation.speed import SpeedOptions

    return SpeedOptions(
        compile=settings.GENERATION_COMPILE,
        compile_cache_dir=settings.GENERATION_COMPILE_CACHE_DIR if settings.GENERATION_COMPILE else None,
        cuda_graphs=settings.GENERATION_CUDA_GRAPHS,
        memory_budget_gib=settings.GENERATION_MEMORY_BUDGET_GIB,
    )


def build_request(
    run: GenerationRun, concept: Concept, prompt: Prompt, seed_indices: list[int], images_per_call: int | None = None
):
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
        dtype=settings.GENERATION_DTYPE,
        batch_size=images_per_call,
        speed=speed_options(),
    )


def generate_missing(
    run: GenerationRun, concept: Concept, prompt: Prompt, seed_indices: list[int], on_step=None
) -> BatchResult:
    """Generate the images of one (run, concept, prompt) that do not exist yet; store each as soon as it exists.

    Unpacked (GENERATION_PACK_IMAGES = 0), seeds go to the library GENERATION_IMAGES_PER_CALL at a time.
    Packed, all the missing seeds go at once and the library puts up to GENERATION_PACK_IMAGES of them
    into each denoiser call (fewer where GENERATION_MEMORY_BUDGET_GIB holds fewer). Either way the images
    of a call are stored as soon as it returns, so a lost worker loses at most one call's work.
    """
    from generation.api import iter_samples

    todo = missing_seed_indices(run, concept, prompt, seed_indices)
    pack = settings.GENERATION_PACK_IMAGES
    per_request = max(len(todo), 1) if pack else settings.GENERATION_IMAGES_PER_CALL
    created = 0
    for start in range(0, len(todo), per_request):
        request = build_request(run, concept, prompt, todo[start : start + per_request], images_per_call=pack or None)
        for _, sample in iter_samples([request], progress=on_step):
            created += store_sample(run, concept, prompt, sample)
    return BatchResult(created=created, skipped=len(seed_indices) - created)


def generate_group(batches: list[GenerationBatch], on_step=None) -> BatchResult:
    """The missing images of several batches of one run and concept (its prompts), packed into shared
    denoiser calls: up to GENERATION_PACK_IMAGES images of any of the prompts per call. Each image is
    stored as soon as its call returns, under its own prompt."""
    from generation.api import iter_samples

    run, concept = batches[0].run, batches[0].concept
    requests, prompts, asked = [], [], 0
    for batch in batches:
        asked += len(batch.seed_indices)
        todo = missing_seed_indices(run, concept, batch.prompt, batch.seed_indices)
        if todo:
            requests.append(
                build_request(run, concept, batch.prompt, todo, images_per_call=settings.GENERATION_PACK_IMAGES)
            )
            prompts.append(batch.prompt)
    created = 0
    for number, sample in iter_samples(requests, progress=on_step):
        created += store_sample(run, concept, prompts[number], sample)
    return BatchResult(created=created, skipped=asked - created)


def generate_batch(run_id: int, concept_id: int, prompt_id: int, seed_indices: list[int], on_step=None) -> BatchResult:
    """Generate and store the missing images of one (run, concept, prompt), without a batch row (demo, scripts)."""
    run = GenerationRun.objects.select_related("method").get(pk=run_id)
    concept = Concept.objects.get(pk=concept_id)
    prompt = Prompt.objects.get(pk=prompt_id)
    return generate_missing(run, concept, prompt, list(seed_indices), on_step=on_step)


def prepare_models(batch: GenerationBatch) -> None:
    """Load the batch's models before claiming it: the lease then covers sampling only, which renews it at
    every step, and not a first load that can outlast the lease on a busy machine.

    A model that fails to load is not an error here: the same load under the lease records it on the batch.
    """
    from generation.api import prepare

    request = build_request(batch.run, batch.concept, batch.prompt, list(batch.seed_indices) or [0])
    try:
        prepare(request)
    except Exception:
        log.info("batch %s: its models did not load before the claim; generating will say why", batch.pk)


def run_batch(batch_id: int, worker: str | None = None) -> BatchResult | None:
    """Generate one batch under a lease. Returns None when there was nothing for this worker to do."""
    worker = worker or worker_name()
    batch = GenerationBatch.objects.filter(pk=batch_id).select_related("run__method", "concept", "prompt").first()
    if batch is None or batch.state in (Batch.DONE, Batch.CANCELLED):
        return None
    prepare_models(batch)
    if not claim_batch(batch_id, worker, lease_seconds()):
        log.info("batch %s is done, cancelled or held by another worker: skipped", batch_id)
        return None
    mark_run_started(batch.run_id)
    group = [batch]
    if settings.GENERATION_PACK_IMAGES:  # the concept's other prompts join while their seeds fit in one call
        group += claim_companions(batch, worker, settings.GENERATION_PACK_IMAGES)
        if len(group) > 1:
            log.info("batch %s: packed with batches %s (same run and concept)", batch_id, [b.pk for b in group[1:]])
    ids = [member.pk for member in group]
    try:
        heartbeat = Heartbeat(ids, worker)
        if settings.GENERATION_PACK_IMAGES:
            result = generate_group(group, on_step=heartbeat)
        else:
            result = generate_missing(batch.run, batch.concept, batch.prompt, batch.seed_indices, on_step=heartbeat)
    except LeaseLost as exc:
        log.info("%s", exc)
        _give_back(ids, worker)
        return None
    except Exception as exc:  # recorded on the batches and their run; the message is what the page shows
        log.exception("batch %s failed", batch_id)
        for member in ids:
            finish_batch(member, worker, Batch.FAILED, f"{type(exc).__name__}: {exc}")
        return None
    for member in group:
        missing = missing_seed_indices(batch.run, batch.concept, member.prompt, member.seed_indices)
        if missing:
            finish_batch(member.pk, worker, Batch.FAILED, f"no image came back for seed indices {missing}")
        else:
            finish_batch(member.pk, worker, Batch.DONE)
    return result


def _give_back(batch_ids: list[int], worker: str) -> None:
    """After a lost lease in a packed group, the batches still held go back to the queue. Their own
    messages find them there; one that a worker took and skipped while this one held its batch is
    resent by the reconciler, as for any lost message."""
    released = release_batches(batch_ids, worker)
    if released:
        log.info("batches %s given back to the queue", released)
