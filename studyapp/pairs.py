"""Build a study's pairs: for each comparison, the two methods' images of the same concept, prompt and seed."""

import random

from django.db import transaction

from studyapp.models import Comparison, GeneratedImage, Pair, Study


class StudyFrozen(Exception):
    """A published study's design cannot change; make a new version instead."""


def _latest_images(method_id: int) -> dict[tuple, GeneratedImage]:
    images = (
        GeneratedImage.objects.filter(method_id=method_id)
        .select_related("prompt")
        .order_by("created", "id")
    )
    # Keyed by prompt text, not row: the same template in two prompt sets is the same prompt.
    return {(image.concept_id, image.prompt.template, image.seed_index): image for image in images}


def pairs_for(comparison: Comparison) -> list[Pair]:
    images_a = _latest_images(comparison.method_a_id)
    images_b = _latest_images(comparison.method_b_id)
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
        for key in sorted(images_a.keys() & images_b.keys(), key=str)
    ]


@transaction.atomic
def build_pairs(study: Study) -> int:
    """(Re)build the regular pairs of a draft study; returns how many there are."""
    if study.is_frozen:
        raise StudyFrozen(f"study {study.slug!r} is {study.state}; its pairs are fixed")
    study.pairs.filter(kind=Pair.Kind.REGULAR).delete()
    pairs = [pair for comparison in study.comparisons.all() for pair in pairs_for(comparison)]
    _mark_overlap(study, pairs)
    Pair.objects.bulk_create(pairs)
    return len(pairs)


def _mark_overlap(study: Study, pairs: list[Pair]) -> None:
    count = round(len(pairs) * study.overlap_fraction)
    for pair in random.Random(study.random_seed).sample(pairs, count):
        pair.in_overlap = True
        pair.target_ratings = max(study.ratings_per_pair, study.overlap_ratings)
