"""The design freeze: a published study keeps what it measures, whoever writes to it."""

import pytest
from django.db import transaction

from studyapp.models import Comparison, Study
from studyapp.studies.freeze import StudyFrozen
from studyapp.studies.publishing import close, publish

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ratings_per_pair", 9),
        ("question_text", "Which one?"),
        ("gold_rate", 0.2),
        ("instructions", "new"),
        ("overlap_fraction", 0.5),
    ],
)
def test_a_published_study_refuses_design_changes_on_save(study, field, value):
    publish(study)
    study.refresh_from_db()
    setattr(study, field, value)
    with pytest.raises(StudyFrozen, match=field):
        study.save()
    study.refresh_from_db()
    assert getattr(study, field) != value


def test_a_published_study_accepts_corrected_completion_links_and_title(study):
    publish(study)
    study.refresh_from_db()
    study.completion_code, study.completion_url, study.title = (
        "C0DE",
        "https://app.prolific.com/submissions/complete?cc=C0DE",
        "Renamed",
    )
    study.save()
    study.refresh_from_db()
    assert study.completion_code == "C0DE" and study.title == "Renamed"


def test_a_published_study_refuses_comparison_changes(study):
    publish(study)
    comparison = study.comparisons.first()
    with pytest.raises(StudyFrozen):
        Comparison.objects.create(study=study, method_a=comparison.method_b, method_b=comparison.method_a)
    comparison.position = 7
    with pytest.raises(StudyFrozen):
        comparison.save()
    with pytest.raises(StudyFrozen):
        comparison.delete()
    assert study.comparisons.count() == 2


def test_state_moves_only_forward(study):
    publish(study)
    study.refresh_from_db()
    study.state = Study.State.DRAFT
    with pytest.raises(StudyFrozen, match="back to draft"):
        study.save()
    closed = close(study)
    assert closed.state == Study.State.CLOSED
    with pytest.raises(ValueError, match="only a published study"):
        close(closed)


def test_a_queryset_delete_of_a_published_studys_comparisons_is_refused(study):
    publish(study)
    with pytest.raises(StudyFrozen), transaction.atomic():  # refused inside Django's deletion transaction
        Comparison.objects.filter(study=study).delete()
    assert study.comparisons.count() == 2


def test_a_published_study_can_still_be_deleted_with_its_comparisons(study):
    publish(study)
    Study.objects.get(pk=study.pk).delete()
    assert not Study.objects.filter(pk=study.pk).exists()
    assert not Comparison.objects.filter(study_id=study.pk).exists()
