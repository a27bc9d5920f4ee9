"""Gold and attention pairs, publishing, the design freeze and new versions."""

import re

import numpy as np
import pytest
from PIL import Image

from studyapp import setup
from studyapp.models import Comparison, GeneratedImage, Method, Pair, Study
from studyapp.pairs import StudyFrozen
from tests import factories

pytestmark = pytest.mark.django_db

TEMPLATES = ("a {concept} in the snow", "a {concept} on the beach", "a red {concept} next to a lighthouse")
CONTENT_NAME = re.compile(r"^generated/[0-9a-f]{2}/[0-9a-f]{64}\.png$")


@pytest.fixture
def study():
    """Two comparisons, two subjects, three prompts, two seeds; 3 gold pairs per question, 4 attention checks."""
    study = factories.study_with_images(methods=3, concepts=2, seeds=2, templates=TEMPLATES)
    Study.objects.filter(pk=study.pk).update(pairs_per_rater=30, gold_rate=0.1, attention_rate=0.05)
    study.refresh_from_db()
    return study


def _pixels(image: GeneratedImage) -> np.ndarray:
    with image.file.open("rb") as handle, Image.open(handle) as opened:
        return np.asarray(opened.convert("RGB"), dtype=np.int16)


def _right_and_wrong(pair: Pair, question: str) -> tuple[GeneratedImage, GeneratedImage]:
    return (pair.image_a, pair.image_b) if pair.expected[question] == "a" else (pair.image_b, pair.image_a)


def _gold(study, question):
    return [p for p in study.pairs.filter(kind=Pair.Kind.GOLD).select_related("image_a__prompt", "image_b__prompt") if question in p.expected]


def test_build_makes_regular_gold_and_attention_pairs(study):
    report = setup.build_study_pairs(study)
    assert report.regular == 2 * 2 * 3 * 2
    assert report.gold == {"text": 3, "image": 3, "overall": 3}
    assert report.attention == 4
    assert study.pairs.filter(kind=Pair.Kind.GOLD).count() == 9
    assert study.pairs.filter(kind=Pair.Kind.ATTENTION).count() == 4
    assert report.notes == []


def test_text_gold_pits_the_right_prompt_against_an_unrelated_one_of_the_same_subject(study):
    setup.build_study_pairs(study)
    for pair in _gold(study, "text"):
        right, wrong = _right_and_wrong(pair, "text")
        assert pair.expected == {"text": pair.expected["text"]}  # only the tested question is scored
        assert right.prompt.template == pair.prompt.template != wrong.prompt.template
        assert right.concept_id == wrong.concept_id == pair.concept_id
        assert right.seed_index == wrong.seed_index == pair.seed_index
        assert right.method_id == wrong.method_id
        assert pair.comparison_id is None


def test_image_gold_pits_the_subject_against_another_subject_with_the_same_prompt(study):
    setup.build_study_pairs(study)
    for pair in _gold(study, "image"):
        right, wrong = _right_and_wrong(pair, "image")
        assert set(pair.expected) == {"image"}
        assert right.concept_id == pair.concept_id != wrong.concept_id
        assert right.prompt.template == wrong.prompt.template == pair.prompt.template
        assert right.method_id == wrong.method_id


def test_overall_gold_pits_a_clean_image_against_its_corrupted_copy(study):
    setup.build_study_pairs(study)
    for pair in _gold(study, "overall"):
        clean, corrupted = _right_and_wrong(pair, "overall")
        assert set(pair.expected) == {"overall"}
        assert corrupted.method.name == setup.GOLD_METHOD
        assert clean.method.name != setup.GOLD_METHOD
        assert (corrupted.width, corrupted.height) == (clean.width, clean.height)
        assert (corrupted.concept_id, corrupted.prompt_id, corrupted.seed_index) == (clean.concept_id, clean.prompt_id, clean.seed_index)
        assert np.abs(_pixels(corrupted) - _pixels(clean)).mean() > 10


def test_corruption_blurs_and_adds_noise_to_a_detailed_image():
    stripes = np.zeros((64, 64, 3), np.uint8)
    stripes[:, ::2] = 255
    import io

    buffer = io.BytesIO()
    Image.fromarray(stripes).save(buffer, format="PNG")
    corrupted = setup.corrupt(buffer.getvalue(), "PNG", seed=1)
    with Image.open(io.BytesIO(corrupted)) as opened:
        assert opened.format == "PNG" and opened.size == (64, 64)
        pixels = np.asarray(opened.convert("RGB"), dtype=np.int16)
    # The one-pixel stripes are gone: neighbouring columns no longer differ by 255.
    assert np.abs(np.diff(pixels[:, :, 0], axis=1)).mean() < 100


def test_right_answers_fall_on_both_sides(study):
    setup.build_study_pairs(study)
    sides = [answer for pair in study.pairs.exclude(kind=Pair.Kind.REGULAR) for answer in pair.expected.values()]
    assert set(sides) == {"a", "b"}


def test_check_pairs_look_like_regular_pairs_to_a_rater(study):
    setup.build_study_pairs(study)
    regular = study.pairs.filter(kind=Pair.Kind.REGULAR).select_related("image_a", "image_b").first()
    method_names = list(Method.objects.values_list("name", flat=True))
    for pair in study.pairs.select_related("image_a", "image_b"):
        assert len(pair.token) == len(regular.token) and re.fullmatch(r"[A-Za-z0-9_-]+", pair.token)
        assert pair.target_ratings == regular.target_ratings
        for image in (pair.image_a, pair.image_b):
            assert CONTENT_NAME.match(image.file.name), image.file.name
            assert len(image.token) == len(regular.image_a.token)
            assert not any(name in image.file.name or name in image.token for name in method_names)
            assert (image.width, image.height) == (regular.image_a.width, regular.image_a.height)


def test_attention_check_is_a_grey_square_and_the_real_image_answers_all_questions(study):
    setup.build_study_pairs(study)
    checks = list(study.pairs.filter(kind=Pair.Kind.ATTENTION).select_related("image_a", "image_b"))
    assert len(checks) == 4
    for pair in checks:
        assert set(pair.expected) == {"text", "image", "overall"}
        assert len(set(pair.expected.values())) == 1
        real, grey = _right_and_wrong(pair, "overall")
        assert (_pixels(grey) == 128).all()
        assert grey.method.name == setup.ATTENTION_METHOD
        assert real.method.name not in setup.CHECK_METHODS
        assert real.concept_id == pair.concept_id and real.prompt_id == pair.prompt_id


def test_building_twice_changes_no_pair_and_stores_no_new_image(study):
    setup.build_study_pairs(study)
    rows = sorted(study.pairs.values_list("id", "token", "kind", "image_a", "image_b", "expected"))
    images = GeneratedImage.objects.count()
    setup.build_study_pairs(study)
    assert sorted(study.pairs.values_list("id", "token", "kind", "image_a", "image_b", "expected")) == rows
    assert GeneratedImage.objects.count() == images


def test_a_study_with_one_subject_says_which_gold_pairs_it_cannot_build():
    study = factories.study_with_images(methods=2, concepts=1, seeds=1, templates=TEMPLATES)
    report = setup.build_study_pairs(study)
    assert report.gold["image"] == 0
    assert any("image question" in note and "second concept" in note for note in report.notes)


def test_check_methods_are_never_offered_as_study_methods(study):
    setup.build_study_pairs(study)
    assert not study.comparisons.filter(method_a__name__in=setup.CHECK_METHODS).exists()
    assert Method.objects.get(name=setup.GOLD_METHOD).kind == Method.Kind.EXTERNAL


def test_only_the_scored_questions_count_and_a_tie_is_a_miss(study):
    setup.build_study_pairs(study)
    gold = _gold(study, "text")[0]
    right = gold.expected["text"]
    wrong = "b" if right == "a" else "a"
    assert setup.scored_answers(gold, {"text": right, "image": wrong, "overall": "tie"}) == {"text": True}
    assert not setup.check_failed(gold, {"text": right, "image": wrong, "overall": wrong})
    assert setup.check_failed(gold, {"text": "tie", "image": right, "overall": right})
    attention = study.pairs.filter(kind=Pair.Kind.ATTENTION).first()
    real = attention.expected["text"]
    assert setup.check_failed(attention, {"text": real, "image": real, "overall": "tie"})
    assert not setup.check_failed(attention, {"text": real, "image": real, "overall": real})
    regular = study.pairs.filter(kind=Pair.Kind.REGULAR).first()
    assert not setup.check_failed(regular, {"text": "tie", "image": "tie", "overall": "tie"})


def test_attention_failures_allowed_defaults_to_one_and_follows_the_exclusion_rules(study):
    assert setup.attention_failures_allowed(study) == 1
    study.exclusion_rules = {"max_attention_failures": 2}
    assert setup.attention_failures_allowed(study) == 2


# ---------------------------------------------------------------------------- publish and freeze


def test_publish_builds_pairs_and_freezes_the_study(study):
    report = setup.publish(study)
    study.refresh_from_db()
    assert study.state == Study.State.PUBLISHED and study.published is not None
    assert study.pairs.filter(kind=Pair.Kind.REGULAR).count() == report.regular > 0
    with pytest.raises(StudyFrozen):
        setup.build_study_pairs(study)


def test_publish_without_images_refuses_and_leaves_a_draft():
    study = Study.objects.create(slug="empty", title="empty")
    Comparison.objects.create(study=study, method_a=factories.method(sampler="mixed"), method_b=factories.method())
    with pytest.raises(ValueError, match="no pairs could be built"):
        setup.publish(study)
    study.refresh_from_db()
    assert study.state == Study.State.DRAFT


@pytest.mark.parametrize(
    "field, value",
    [("ratings_per_pair", 9), ("question_text", "Which one?"), ("gold_rate", 0.2), ("instructions", "new"), ("overlap_fraction", 0.5)],
)
def test_a_published_study_refuses_design_changes_on_save(study, field, value):
    setup.publish(study)
    study.refresh_from_db()
    setattr(study, field, value)
    with pytest.raises(StudyFrozen, match=field):
        study.save()
    study.refresh_from_db()
    assert getattr(study, field) != value


def test_a_published_study_accepts_corrected_completion_links_and_title(study):
    setup.publish(study)
    study.refresh_from_db()
    study.completion_code, study.completion_url, study.title = "C0DE", "https://app.prolific.com/submissions/complete?cc=C0DE", "Renamed"
    study.save()
    study.refresh_from_db()
    assert study.completion_code == "C0DE" and study.title == "Renamed"


def test_a_published_study_refuses_comparison_changes(study):
    setup.publish(study)
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
    setup.publish(study)
    study.refresh_from_db()
    study.state = Study.State.DRAFT
    with pytest.raises(StudyFrozen, match="back to draft"):
        study.save()
    closed = setup.close(study)
    assert closed.state == Study.State.CLOSED
    with pytest.raises(ValueError, match="only a published study"):
        setup.close(closed)


def test_new_version_is_an_editable_draft_copy_with_the_same_comparisons(study):
    Study.objects.filter(pk=study.pk).update(question_text="Which fits the words?", completion_code="DONE-1")
    setup.publish(study)
    study.refresh_from_db()
    follower = setup.new_version(study)

    assert (follower.version, follower.previous_version_id, follower.state) == (2, study.pk, Study.State.DRAFT)
    assert follower.slug != study.slug and follower.open_link_token != study.open_link_token
    assert follower.published is None and not follower.pairs.exists()
    assert follower.question_text == "Which fits the words?" and follower.completion_code == "DONE-1"
    pairs_of = lambda s: sorted(s.comparisons.values_list("method_a", "method_b", "position"))  # noqa: E731
    assert pairs_of(follower) == pairs_of(study)

    follower.ratings_per_pair = 5
    follower.save()
    follower.comparisons.first().delete()
    assert setup.build_study_pairs(follower).regular == 2 * 3 * 2
    study.refresh_from_db()
    assert study.ratings_per_pair == 3 and study.comparisons.count() == 2


def test_a_second_new_version_of_the_same_study_is_refused(study):
    setup.publish(study)
    follower = setup.new_version(study)
    with pytest.raises(ValueError, match=follower.slug):
        setup.new_version(study)
    assert setup.new_version(follower).version == 3
