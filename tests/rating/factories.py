"""Builders for the rating tests: a published study with pairs, reference photos and check pairs."""

from django.core.files.base import ContentFile

from studyapp.models import GeneratedImage, Pair, Rater, ReferenceImage, Study
from studyapp.rating.answers import submit_answer
from studyapp.rating.assignment import claim_leases
from studyapp.studies.pairs import build_pairs
from tests import factories


def published_study(
    seeds=2, methods=2, concepts=1, templates=("a {concept} in the snow", "a {concept} on the beach"), **fields
) -> Study:
    """A published study whose regular pairs each want `ratings_per_pair` answers (no overlap unless asked)."""
    study = factories.study_with_images(methods=methods, concepts=concepts, seeds=seeds, templates=templates)
    values = {"overlap_fraction": 0.0, "gold_rate": 0.0, "attention_rate": 0.0, "completion_code": "CODE-123", **fields}
    for name, value in values.items():
        setattr(study, name, value)
    study.save()
    build_pairs(study)
    for concept_id in set(study.pairs.values_list("concept_id", flat=True)):
        add_references(concept_id)
    study.state = Study.State.PUBLISHED
    study.save()
    return study


def add_references(concept_id: int, count: int = 2) -> None:
    for index in range(count):
        data = factories.png_bytes(color=(10 + 40 * index, 90, 200), size=(24, 24))
        reference = ReferenceImage(
            concept_id=concept_id, content_hash=f"{concept_id:08d}{index:056d}", original_name=f"ref{index}.png"
        )
        reference.image.save(f"ref{index}.png", ContentFile(data), save=False)
        reference.save()


def check_pair(study: Study, kind: str, expected: dict) -> Pair:
    """A gold or attention pair of two images of its own, about one of the study's regular pairs' slot.

    Its images are new rows (as the corrupted copies and grey squares of real check pairs are), so
    showing it never repeats an image of a regular pair.
    """
    source = study.pairs.filter(kind=Pair.Kind.REGULAR).order_by("id").first()
    copies = [_copy_of(image) for image in (source.image_a, source.image_b)]
    return Pair.objects.create(
        study=study,
        kind=kind,
        image_a=copies[0],
        image_b=copies[1],
        concept=source.concept,
        prompt=source.prompt,
        seed_index=source.seed_index,
        target_ratings=1,
        expected=expected,
    )


def _copy_of(image: GeneratedImage) -> GeneratedImage:
    free_seed = 1000 + GeneratedImage.objects.filter(run=image.run).count()
    return factories.generated_image(image.run, image.concept, image.prompt, seed_index=free_seed)


def open_rater(study: Study, name: str = "r1", ready: bool = True) -> Rater:
    from django.utils import timezone

    rater = Rater.objects.create(study=study, source=Rater.Source.OPEN, external_id=name)
    if ready:
        rater.consented = rater.instructed = timezone.now()
        rater.save()
    return rater


ALL_ONE = {"text": "1", "image": "1", "overall": "1"}


def rate_all(rater, answer=ALL_ONE, limit=200):
    """Answer whatever the engine hands out until it says the rater is done; returns the pairs rated."""
    rated = []
    for _ in range(limit):
        leases = claim_leases(rater)
        if leases.current is None:
            return rated
        submit_answer(rater, leases.current.token, answer, response_ms=1000)
        rated.append(leases.current.pair_id)
    raise AssertionError(f"rater {rater.pk} was still being given pairs after {limit}")
