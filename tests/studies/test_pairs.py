"""Regular pairs: same concept, prompt text and seed index, one image per method; a rebuild is a no-op."""

import pytest

from studyapp.models import Comparison, GeneratedImage, Pair, Study
from studyapp.studies.freeze import StudyFrozen
from studyapp.studies.pairs import build_pairs, slot_coverage
from tests import factories

pytestmark = pytest.mark.django_db


def _pair_rows(study):
    return sorted(study.pairs.values_list("id", "token", "image_a", "image_b", "in_overlap", "target_ratings"))


def test_each_pair_holds_one_image_of_each_method_for_the_same_slot():
    study = factories.study_with_images(methods=3, concepts=2, seeds=2)
    assert build_pairs(study) == 2 * (2 * 2 * 2)  # comparisons x concepts x prompts x seeds
    for pair in study.pairs.select_related("comparison", "image_a", "image_b"):
        assert pair.kind == Pair.Kind.REGULAR
        assert pair.image_a.method_id == pair.comparison.method_a_id
        assert pair.image_b.method_id == pair.comparison.method_b_id
        for image in (pair.image_a, pair.image_b):
            assert (image.concept_id, image.prompt_id, image.seed_index) == (
                pair.concept_id,
                pair.prompt_id,
                pair.seed_index,
            )


def test_slots_missing_on_one_side_give_no_pair():
    study = factories.study_with_images(methods=2, concepts=1, seeds=3)
    comparison = study.comparisons.get()
    GeneratedImage.objects.filter(method=comparison.method_b, seed_index=2).delete()
    assert build_pairs(study) == 2 * 2  # prompts x remaining seeds
    assert not study.pairs.filter(seed_index=2).exists()
    coverage = slot_coverage(comparison)
    assert (coverage.slots_a, coverage.slots_b, coverage.complete, coverage.missing_b) == (6, 4, 4, 2)


def test_same_prompt_text_in_two_prompt_sets_is_the_same_prompt():
    templates = ("a {concept} in the snow", "a {concept} on the beach")
    set_one, set_two = factories.prompt_set(templates=templates), factories.prompt_set(templates=templates)
    subject = factories.concept()
    method_a, method_b = factories.method(sampler="mixed"), factories.method(sampler="base")
    for method, prompts in ((method_a, set_one), (method_b, set_two)):
        run = factories.run(method, prompts)
        for prompt in prompts.prompts.all():
            factories.generated_image(run, subject, prompt, seed_index=0)
    study = Study.objects.create(slug="cross-set", title="cross set")
    Comparison.objects.create(study=study, method_a=method_a, method_b=method_b)

    assert build_pairs(study) == 2
    for pair in study.pairs.select_related("image_a__prompt", "image_b__prompt"):
        assert pair.image_a.prompt.template == pair.image_b.prompt.template
        assert pair.image_a.prompt.prompt_set_id != pair.image_b.prompt.prompt_set_id


def test_the_newest_image_of_a_slot_is_used():
    study = factories.study_with_images(methods=2, concepts=1, seeds=1, templates=("a {concept} in the snow",))
    comparison = study.comparisons.get()
    old = GeneratedImage.objects.get(method=comparison.method_a)
    newer = factories.generated_image(factories.run(comparison.method_a), old.concept, old.prompt, seed_index=0)
    build_pairs(study)
    assert study.pairs.get().image_a_id == newer.pk


def test_overlap_share_is_taken_per_comparison_and_rated_by_more_raters():
    study = factories.study_with_images(methods=3, concepts=1, seeds=5)  # 10 pairs per comparison
    Study.objects.filter(pk=study.pk).update(overlap_fraction=0.2, ratings_per_pair=1, overlap_ratings=4)
    study.refresh_from_db()
    build_pairs(study)
    for comparison in study.comparisons.all():
        pairs = study.pairs.filter(comparison=comparison)
        assert pairs.filter(in_overlap=True).count() == 2
        assert set(pairs.filter(in_overlap=True).values_list("target_ratings", flat=True)) == {4}
        assert set(pairs.filter(in_overlap=False).values_list("target_ratings", flat=True)) == {1}


def test_building_twice_keeps_the_same_rows_and_tokens():
    study = factories.study_with_images(methods=2, concepts=2, seeds=2)
    build_pairs(study)
    first = _pair_rows(study)
    assert build_pairs(study) == len(first)
    assert _pair_rows(study) == first


def test_rebuild_after_a_design_change_adds_and_removes_only_what_changed():
    study = factories.study_with_images(methods=3, concepts=1, seeds=1)
    build_pairs(study)
    kept_comparison, dropped = study.comparisons.order_by("position")
    kept = set(study.pairs.filter(comparison=kept_comparison).values_list("id", flat=True))
    dropped.delete()
    assert build_pairs(study) == len(kept)
    assert set(study.pairs.values_list("id", flat=True)) == kept


def test_a_published_study_refuses_to_build_pairs():
    study = factories.study_with_images(methods=2, seeds=1)
    build_pairs(study)
    Study.objects.filter(pk=study.pk).update(state=Study.State.PUBLISHED)
    study.refresh_from_db()
    before = _pair_rows(study)
    with pytest.raises(StudyFrozen, match="published"):
        build_pairs(study)
    assert _pair_rows(study) == before
