"""Repeats over HTTP: a rater walking a study with a shared baseline never receives an image twice."""

import hashlib
from collections import Counter

import pytest

from studyapp.models import Answer, GeneratedImage, Rater
from tests import factories
from tests.integrity.scripted import ScriptedRater, assignment_token, image_paths
from tests.rating.factories import published_study

pytestmark = pytest.mark.services


def distinct_pictures(study) -> None:
    """Give every image of the study a picture of its own, so that served bytes name the image."""
    for image in GeneratedImage.objects.filter(method__in=methods_of(study)):
        with image.file.storage.open(image.file.name, "wb") as stored:
            stored.write(factories.encoded(factories.picture((64, 64), shift=image.pk), "PNG"))


def methods_of(study) -> set[int]:
    return {m for pair in study.comparisons.values_list("method_a", "method_b") for m in pair}


def test_two_comparisons_against_one_baseline_never_repeat_an_image(live_server_url):
    study = published_study(methods=3, seeds=4, ratings_per_pair=5, pairs_per_rater=16)  # 2 x 8 pairs
    distinct_pictures(study)
    rater = ScriptedRater(live_server_url)
    rater.enter(f"/s/{study.open_link_token}/")
    rater.consent_and_start()
    received = []
    page = rater.page()
    while assignment_token(page):
        received += [hashlib.sha256(rater.get(path).body).hexdigest() for path in image_paths(page)]
        page = rater.answer(page)
    assert page.status == 200 and "CODE-123" in page.text  # finished once no unseen image is left
    assert len(received) == 16 and len(set(received)) == 16  # 8 pairs, one per baseline image

    stored = Rater.objects.get(study=study)
    sides = Counter(Answer.objects.filter(rater=stored).values_list("pair__comparison_id", "left_is_a"))
    for comparison in study.comparisons.values_list("pk", flat=True):
        assert abs(sides[comparison, True] - sides[comparison, False]) <= 1
