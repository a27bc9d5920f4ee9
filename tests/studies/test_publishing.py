"""Publishing a study (it builds the pairs one last time, then freezes) and making new versions of it."""

import pytest

from studyapp.models import Comparison, Pair, Study
from studyapp.studies.freeze import StudyFrozen
from studyapp.studies.publishing import build_study_pairs, new_version, publish
from tests import factories

pytestmark = pytest.mark.django_db


def test_publish_builds_pairs_and_freezes_the_study(study):
    report = publish(study)
    study.refresh_from_db()
    assert study.state == Study.State.PUBLISHED and study.published is not None
    assert study.pairs.filter(kind=Pair.Kind.REGULAR).count() == report.regular > 0
    with pytest.raises(StudyFrozen):
        build_study_pairs(study)


def test_publish_without_images_refuses_and_leaves_a_draft():
    study = Study.objects.create(slug="empty", title="empty")
    Comparison.objects.create(study=study, method_a=factories.method(sampler="mixed"), method_b=factories.method())
    with pytest.raises(ValueError, match="no pairs could be built"):
        publish(study)
    study.refresh_from_db()
    assert study.state == Study.State.DRAFT


def test_new_version_is_an_editable_draft_copy_with_the_same_comparisons(study):
    Study.objects.filter(pk=study.pk).update(question_text="Which fits the words?", completion_code="DONE-1")
    publish(study)
    study.refresh_from_db()
    follower = new_version(study)

    assert (follower.version, follower.previous_version_id, follower.state) == (2, study.pk, Study.State.DRAFT)
    assert follower.slug != study.slug and follower.open_link_token != study.open_link_token
    assert follower.published is None and not follower.pairs.exists()
    assert follower.question_text == "Which fits the words?" and follower.completion_code == "DONE-1"
    pairs_of = lambda s: sorted(s.comparisons.values_list("method_a", "method_b", "position"))  # noqa: E731
    assert pairs_of(follower) == pairs_of(study)

    follower.ratings_per_pair = 5
    follower.save()
    follower.comparisons.first().delete()
    assert build_study_pairs(follower).regular == 2 * 3 * 2
    study.refresh_from_db()
    assert study.ratings_per_pair == 3 and study.comparisons.count() == 2


def test_a_second_new_version_of_the_same_study_is_refused(study):
    publish(study)
    follower = new_version(study)
    with pytest.raises(ValueError, match=follower.slug):
        new_version(study)
    assert new_version(follower).version == 3
