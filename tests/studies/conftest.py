"""The study the set-up tests share: three methods (two comparisons), two subjects, three prompts, two seeds."""

import pytest

from studyapp.models import Study
from tests import factories

TEMPLATES = ("a {concept} in the snow", "a {concept} on the beach", "a red {concept} next to a lighthouse")


@pytest.fixture
def study():
    """Two comparisons, two subjects, three prompts, two seeds; 3 gold pairs per question, 4 attention checks."""
    study = factories.study_with_images(methods=3, concepts=2, seeds=2, templates=TEMPLATES)
    Study.objects.filter(pk=study.pk).update(pairs_per_rater=30, gold_rate=0.1, attention_rate=0.05)
    study.refresh_from_db()
    return study
