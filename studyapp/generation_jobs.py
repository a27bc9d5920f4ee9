"""Turn a slot of a generation run into stored images, each exactly once.

The Celery tasks in studyapp.tasks are thin wrappers around `generate_batch`; the demo calls it directly.
"""

import hashlib
import io
import logging
from dataclasses import dataclass

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction

from studyapp.models import Concept, GeneratedImage, GenerationRun, Prompt

log = logging.getLogger(__name__)


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


def missing_seed_indices(run: GenerationRun, concept: Concept, prompt: Prompt, seed_indices: list[int]) -> list[int]:
    done = set(
        GeneratedImage.objects.filter(run=run, concept=concept, prompt=prompt, seed_index__in=seed_indices).values_list(
            "seed_index", flat=True
        )
    )
    return [index for index in seed_indices if index not in done]


def generate_batch(run_id: int, concept_id: int, prompt_id: int, seed_indices: list[int], progress=None) -> BatchResult:
    """Generate the images of one (run, concept, prompt) that do not exist yet, and store each once."""
    run = GenerationRun.objects.select_related("method").get(pk=run_id)
    concept = Concept.objects.get(pk=concept_id)
    prompt = Prompt.objects.get(pk=prompt_id)
    todo = missing_seed_indices(run, concept, prompt, seed_indices)
    if not todo:
        return BatchResult(created=0, skipped=len(seed_indices))
    from generation.api import GenerationRequest, generate

    method = run.method
    request = GenerationRequest(
        model=resolve_model(method.base_model),
        personalization=method.personalization_for(concept) or None,
        concept_token=concept.concept_token,
        superclass=concept.superclass,
        prompt_template=prompt.template,
        sampler=method.sampler,
        params=run.params or method.params,
        seed_indices=todo,
        steps=run.steps,
        device=settings.GENERATION_DEVICE,
    )
    created = sum(store_sample(run, concept, prompt, sample) for sample in generate(request, progress=progress))
    return BatchResult(created=created, skipped=len(seed_indices) - created)


def store_sample(run: GenerationRun, concept: Concept, prompt: Prompt, sample) -> bool:
    """Write one image; False if another worker stored the same slot first (its file is then removed)."""
    buffer = io.BytesIO()
    sample.image.save(buffer, format="PNG")
    data = buffer.getvalue()
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
        width=sample.image.width,
        height=sample.image.height,
    )
    image.file.save("image.png", ContentFile(data), save=False)
    try:
        with transaction.atomic():
            image.save()
    except IntegrityError:
        image.file.storage.delete(image.file.name)
        log.info("slot %s/%s/%s/%s was already stored", run.pk, concept.pk, prompt.pk, sample.seed_index)
        return False
    return True
