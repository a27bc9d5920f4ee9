"""Automatic metrics (CLIP-IS, CLIP-TS, DINO-IS) of a run's stored images, written as MetricScore rows.

The Celery task `studyapp.tasks.score_run` (cpu queue) wraps `score_run`; studyapp.results.metrics
reads the scores back for the results and method pages.
"""

import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction

from studyapp.models import Concept, GeneratedImage, MetricScore

log = logging.getLogger(__name__)

CLIP_METRICS = ("clip_is", "clip_ts", "clip_ts_without_class", "clip_ts_with_class")
DINO_METRICS = ("dino_is",)


def metric_models() -> tuple[str, str]:
    """CLIP_MODEL / DINO_MODEL, else the offline encoders OFFLINE_MODELS names (the world's trained
    CLIP and DINO, or the tiny random ones, built on first use)."""
    clip, dino = settings.CLIP_MODEL, settings.DINO_MODEL
    if clip and dino:
        return clip, dino
    if settings.OFFLINE_MODELS == "world":
        from generation.world.paths import CLIP, DINO

        return clip or str(CLIP), dino or str(DINO)
    from generation.tiny import save_tiny_clip, save_tiny_dino

    return clip or str(save_tiny_clip(settings.TINY_MODEL_DIR)), dino or str(save_tiny_dino(settings.TINY_MODEL_DIR))


@dataclass
class ScoringReport:
    scored: int = 0
    errors: list[str] = field(default_factory=list)


def _pil(file_field):
    from PIL import Image

    with file_field.open("rb") as handle:
        image = Image.open(handle)
        image.load()
    return image.convert("RGB")


def _references(concepts: list[Concept]) -> dict[str, list]:
    return {concept.slug: [_pil(ref.image) for ref in concept.references.all()] for concept in concepts}


def score_images(images: list[GeneratedImage]) -> ScoringReport:
    """Score images against their concept's reference photos and store MetricScore rows (upserted)."""
    from generation.metrics import ScoringItem
    from generation.metrics import score_images as score

    report = ScoringReport()
    items, unreadable = [], []
    for image in images:
        try:
            items.append(_item(image, ScoringItem))
        except (OSError, ValueError) as exc:
            unreadable.append(f"image {image.pk} ({image.file.name}): {exc}")
    concepts = list({image.concept_id: image.concept for image in images}.values())
    references = {slug: refs for slug, refs in _references(concepts).items() if refs}
    report.errors.extend(f"concept {c.slug}: no reference photos" for c in concepts if c.slug not in references)
    items = [item for item in items if item.concept in references]
    report.errors.extend(unreadable)
    if not items:
        return report
    clip_model, dino_model = metric_models()
    scores = score(items, references, clip_model=clip_model, dino_model=dino_model)
    with transaction.atomic():
        for result in scores:
            if result.error:
                report.errors.append(result.error)
                continue
            _store(int(result.item_id), result, clip_model, dino_model)
            report.scored += 1
    return report


def _item(image: GeneratedImage, item_class):
    return item_class(
        image=_pil(image.file),
        prompt_template=image.prompt.template,
        concept_token=image.concept.concept_token,
        superclass=image.concept.superclass,
        method=image.method.name,
        concept=image.concept.slug,
        prompt_set=image.prompt.prompt_set.slug,
        seed_index=image.seed_index,
        item_id=str(image.pk),
    )


def _store(image_id: int, result, clip_model: str, dino_model: str) -> None:
    for metric in CLIP_METRICS + DINO_METRICS:
        value = getattr(result, metric)
        if value is None:
            continue
        MetricScore.objects.update_or_create(
            image_id=image_id,
            metric=metric,
            model_id=dino_model if metric in DINO_METRICS else clip_model,
            defaults={"value": float(value)},
        )


def score_run(run_id: int) -> ScoringReport:
    images = list(
        GeneratedImage.objects.filter(run_id=run_id).select_related("method", "concept", "prompt__prompt_set")
    )
    report = score_images(images)
    for error in report.errors:
        log.warning("run %s: %s", run_id, error)
    return report
