"""Gold and attention pairs: how they are built from the study's images, and how they are scored."""

import re

import numpy as np
import pytest
from PIL import Image

from studyapp.models import GeneratedImage, Method, Pair, Study
from studyapp.studies.check_images import ATTENTION_METHOD, CHECK_METHODS, GOLD_METHOD, corrupt
from studyapp.studies.checks import attention_failures_allowed, check_failed, rater_checks, scored_answers
from studyapp.studies.publishing import build_study_pairs
from tests import factories
from tests.studies.conftest import TEMPLATES

pytestmark = pytest.mark.django_db

CONTENT_NAME = re.compile(r"^generated/[0-9a-f]{2}/[0-9a-f]{64}\.png$")


def _pixels(image: GeneratedImage) -> np.ndarray:
    with image.file.open("rb") as handle, Image.open(handle) as opened:
        return np.asarray(opened.convert("RGB"), dtype=np.int16)


def _right_and_wrong(pair: Pair, question: str) -> tuple[GeneratedImage, GeneratedImage]:
    return (pair.image_a, pair.image_b) if pair.expected[question] == "a" else (pair.image_b, pair.image_a)


def _gold(study, question):
    return [
        p
        for p in study.pairs.filter(kind=Pair.Kind.GOLD).select_related("image_a__prompt", "image_b__prompt")
        if question in p.expected
    ]


def test_build_makes_regular_gold_and_attention_pairs(study):
    report = build_study_pairs(study)
    assert report.regular == 2 * 2 * 3 * 2
    assert report.gold == {"text": 3, "image": 3, "overall": 3}
    assert report.attention == 4
    assert study.pairs.filter(kind=Pair.Kind.GOLD).count() == 9
    assert study.pairs.filter(kind=Pair.Kind.ATTENTION).count() == 4
    assert report.notes == []


def test_text_gold_pits_the_right_prompt_against_an_unrelated_one_of_the_same_subject(study):
    build_study_pairs(study)
    for pair in _gold(study, "text"):
        right, wrong = _right_and_wrong(pair, "text")
        assert pair.expected == {"text": pair.expected["text"]}  # only the tested question is scored
        assert right.prompt.template == pair.prompt.template != wrong.prompt.template
        assert right.concept_id == wrong.concept_id == pair.concept_id
        assert right.seed_index == wrong.seed_index == pair.seed_index
        assert right.method_id == wrong.method_id
        assert pair.comparison_id is None


def test_image_gold_pits_the_subject_against_another_subject_with_the_same_prompt(study):
    build_study_pairs(study)
    for pair in _gold(study, "image"):
        right, wrong = _right_and_wrong(pair, "image")
        assert set(pair.expected) == {"image"}
        assert right.concept_id == pair.concept_id != wrong.concept_id
        assert right.prompt.template == wrong.prompt.template == pair.prompt.template
        assert right.method_id == wrong.method_id


def test_overall_gold_pits_a_clean_image_against_its_corrupted_copy(study):
    build_study_pairs(study)
    for pair in _gold(study, "overall"):
        clean, corrupted = _right_and_wrong(pair, "overall")
        assert set(pair.expected) == {"overall"}
        assert corrupted.method.name == GOLD_METHOD
        assert clean.method.name != GOLD_METHOD
        assert (corrupted.width, corrupted.height) == (clean.width, clean.height)
        assert (corrupted.concept_id, corrupted.prompt_id, corrupted.seed_index) == (
            clean.concept_id,
            clean.prompt_id,
            clean.seed_index,
        )
        assert np.abs(_pixels(corrupted) - _pixels(clean)).mean() > 10


def test_corruption_blurs_and_adds_noise_to_a_detailed_image():
    stripes = np.zeros((64, 64, 3), np.uint8)
    stripes[:, ::2] = 255
    import io

    buffer = io.BytesIO()
    Image.fromarray(stripes).save(buffer, format="PNG")
    corrupted = corrupt(buffer.getvalue(), "PNG", seed=1)
    with Image.open(io.BytesIO(corrupted)) as opened:
        assert opened.format == "PNG" and opened.size == (64, 64)
        pixels = np.asarray(opened.convert("RGB"), dtype=np.int16)
    # The one-pixel stripes are gone: neighbouring columns no longer differ by 255.
    assert np.abs(np.diff(pixels[:, :, 0], axis=1)).mean() < 100


def test_right_answers_fall_on_both_sides(study):
    build_study_pairs(study)
    sides = [answer for pair in study.pairs.exclude(kind=Pair.Kind.REGULAR) for answer in pair.expected.values()]
    assert set(sides) == {"a", "b"}


def test_check_pairs_look_like_regular_pairs_to_a_rater(study):
    build_study_pairs(study)
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
    build_study_pairs(study)
    checks = list(study.pairs.filter(kind=Pair.Kind.ATTENTION).select_related("image_a", "image_b"))
    assert len(checks) == 4
    for pair in checks:
        assert set(pair.expected) == {"text", "image", "overall"}
        assert len(set(pair.expected.values())) == 1
        real, grey = _right_and_wrong(pair, "overall")
        assert (_pixels(grey) == 128).all()
        assert grey.method.name == ATTENTION_METHOD
        assert real.method.name not in CHECK_METHODS
        assert real.concept_id == pair.concept_id and real.prompt_id == pair.prompt_id


def test_building_twice_changes_no_pair_and_stores_no_new_image(study):
    build_study_pairs(study)
    rows = sorted(study.pairs.values_list("id", "token", "kind", "image_a", "image_b", "expected"))
    images = GeneratedImage.objects.count()
    build_study_pairs(study)
    assert sorted(study.pairs.values_list("id", "token", "kind", "image_a", "image_b", "expected")) == rows
    assert GeneratedImage.objects.count() == images


def test_a_study_with_one_subject_says_which_gold_pairs_it_cannot_build():
    study = factories.study_with_images(methods=2, concepts=1, seeds=1, templates=TEMPLATES)
    report = build_study_pairs(study)
    assert report.gold["image"] == 0
    assert any("image question" in note and "second concept" in note for note in report.notes)


def test_check_methods_are_never_offered_as_study_methods(study):
    build_study_pairs(study)
    assert not study.comparisons.filter(method_a__name__in=CHECK_METHODS).exists()
    assert Method.objects.get(name=GOLD_METHOD).kind == Method.Kind.EXTERNAL


def test_only_the_scored_questions_count_and_a_tie_is_a_miss(study):
    build_study_pairs(study)
    gold = _gold(study, "text")[0]
    right = gold.expected["text"]
    wrong = "b" if right == "a" else "a"
    assert scored_answers(gold, {"text": right, "image": wrong, "overall": "tie"}) == {"text": True}
    assert not check_failed(gold, {"text": right, "image": wrong, "overall": wrong})
    assert check_failed(gold, {"text": "tie", "image": right, "overall": right})
    attention = study.pairs.filter(kind=Pair.Kind.ATTENTION).first()
    real = attention.expected["text"]
    assert check_failed(attention, {"text": real, "image": real, "overall": "tie"})
    assert not check_failed(attention, {"text": real, "image": real, "overall": real})
    regular = study.pairs.filter(kind=Pair.Kind.REGULAR).first()
    assert not check_failed(regular, {"text": "tie", "image": "tie", "overall": "tie"})


def test_attention_failures_allowed_defaults_to_one_and_follows_the_exclusion_rules(study):
    assert attention_failures_allowed(study) == 1
    study.exclusion_rules = {"max_attention_failures": 2}
    assert attention_failures_allowed(study) == 2


@pytest.mark.parametrize(
    ("quota", "gold_rate", "attention_rate", "counts", "warning"),
    [
        (10, 0.05, 0.04, (1, 0), "attention rate 0.04 x 10 pairs rounds to 0"),
        (10, 0.5, 0.45, (5, 4), "5 attention pair(s) wanted but only 4 fit"),
        (1, 0.5, 0.0, (0, 0), "1 gold pair(s) wanted but only 0 fit"),
        (20, 0.1, 0.05, (2, 1), None),
    ],
)
def test_rater_checks_say_how_many_each_rater_gets_and_why_not_more(
    study, quota, gold_rate, attention_rate, counts, warning
):
    Study.objects.filter(pk=study.pk).update(pairs_per_rater=quota, gold_rate=gold_rate, attention_rate=attention_rate)
    study.refresh_from_db()
    build_study_pairs(study)
    checks = rater_checks(study)
    assert (checks.gold, checks.attention) == counts
    if warning is None:
        assert checks.warnings == []
    else:
        assert any(warning in text for text in checks.warnings), checks.warnings
