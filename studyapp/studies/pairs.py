"""Build a study's regular pairs: for each comparison, the two methods' images of the same concept, prompt and seed.

Building is a sync, not a rebuild from scratch: pairs that are still right keep their rows (and their
tokens), missing ones are added, ones that no longer fit are removed. Running it twice changes nothing.
"""

import random
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import transaction

from studyapp.models import Comparison, GeneratedImage, Pair, Study
from studyapp.studies.freeze import refuse_if_frozen

SlotKey = tuple[int, str, int]  # concept id, prompt text, seed index


def slot_key(image: GeneratedImage) -> SlotKey:
    # Keyed by prompt text, not row: the same template in two prompt sets is the same prompt.
    return (image.concept_id, image.prompt.template, image.seed_index)


def latest_images(method_id: int) -> dict[SlotKey, GeneratedImage]:
    """One image per slot of a method; where a slot was generated twice, the newest image wins."""
    images = GeneratedImage.objects.filter(method_id=method_id).select_related("prompt").order_by("created", "id")
    return {slot_key(image): image for image in images}


@dataclass
class SlotCoverage:
    """How many slots each side of a comparison has, and how many are usable (present on both sides)."""

    comparison: Comparison
    slots_a: int
    slots_b: int
    complete: int

    @property
    def missing_a(self) -> int:
        return self.slots_b - self.complete

    @property
    def missing_b(self) -> int:
        return self.slots_a - self.complete


def slot_coverage(comparison: Comparison) -> SlotCoverage:
    images_a = latest_images(comparison.method_a_id)
    images_b = latest_images(comparison.method_b_id)
    return SlotCoverage(comparison, len(images_a), len(images_b), len(images_a.keys() & images_b.keys()))


def pairs_for(comparison: Comparison) -> list[Pair]:
    """Unsaved pairs for every slot both methods have, in a stable order."""
    images_a = latest_images(comparison.method_a_id)
    images_b = latest_images(comparison.method_b_id)
    study = comparison.study
    return [
        Pair(
            study=study,
            comparison=comparison,
            kind=Pair.Kind.REGULAR,
            image_a=images_a[key],
            image_b=images_b[key],
            concept_id=key[0],
            prompt_id=images_a[key].prompt_id,
            seed_index=key[2],
            target_ratings=study.ratings_per_pair,
        )
        for key in sorted(images_a.keys() & images_b.keys())
    ]


def mark_overlap(study: Study, pairs: list[Pair]) -> None:
    """Put round(n x overlap_fraction) of these pairs in the overlap subset, chosen with the study's seed."""
    count = round(len(pairs) * study.overlap_fraction)
    chosen = set(random.Random(study.random_seed).sample(range(len(pairs)), count))
    overlap_target = max(study.ratings_per_pair, study.overlap_ratings)
    for index, pair in enumerate(pairs):
        pair.in_overlap = index in chosen
        pair.target_ratings = overlap_target if pair.in_overlap else study.ratings_per_pair


@dataclass
class SyncReport:
    kept: int = 0
    added: int = 0
    removed: int = 0

    @property
    def total(self) -> int:
        return self.kept + self.added


def _identity(pair: Pair) -> tuple:
    return (pair.kind, pair.comparison_id, pair.image_a_id, pair.image_b_id)


SYNCED_FIELDS = ["in_overlap", "target_ratings", "expected", "concept_id", "prompt_id", "seed_index"]


def sync_pairs(study: Study, wanted: Iterable[Pair], kinds: Iterable[str]) -> SyncReport:
    """Make the study's pairs of these kinds exactly `wanted`, keeping rows that already match."""
    wanted = list(wanted)
    existing = {_identity(pair): pair for pair in study.pairs.filter(kind__in=list(kinds))}
    report = SyncReport()
    to_add, to_update = [], []
    for pair in wanted:
        current = existing.pop(_identity(pair), None)
        if current is None:
            to_add.append(pair)
            continue
        report.kept += 1
        if any(getattr(current, name) != getattr(pair, name) for name in SYNCED_FIELDS):
            for name in SYNCED_FIELDS:
                setattr(current, name, getattr(pair, name))
            to_update.append(current)
    if existing:
        Pair.objects.filter(pk__in=[pair.pk for pair in existing.values()]).delete()
    Pair.objects.bulk_create(to_add)
    if to_update:
        Pair.objects.bulk_update(to_update, SYNCED_FIELDS)
    report.added, report.removed = len(to_add), len(existing)
    return report


@transaction.atomic
def build_pairs(study: Study) -> int:
    """Sync the regular pairs of a draft study with its comparisons and images; returns how many there are."""
    refuse_if_frozen(study, "building pairs")
    wanted = []
    for comparison in study.comparisons.select_related("study"):
        pairs = pairs_for(comparison)
        mark_overlap(study, pairs)  # per comparison, so each one gets its share of agreement data
        wanted.extend(pairs)
    return sync_pairs(study, wanted, [Pair.Kind.REGULAR]).total
