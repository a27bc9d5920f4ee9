"""The sample-size planner: the spec's design-effect formula (section 2.8) against numbers worked out by
hand, and the crossed model (the default) per comparison with its subjects, prompts and fixed factors.

n_dec = [z_{1-a/2} * 0.5 + z_{power} * sqrt(w (1 - w))]^2 / (w - 0.5)^2 and N = n_dec * DEFF / (1 - tie rate),
with z_{0.975} = 1.959964, z_{0.8} = 0.841621, sqrt(0.6 * 0.4) = 0.489898.
"""

import pytest

from studyapp import stats
from studyapp.models import Study
from studyapp.studies.pairs import build_pairs
from studyapp.studies.planner import (
    DESIGN_EFFECT,
    PlannerForm,
    answers_planned,
    comparison_design,
    regular_per_rater,
    study_plan,
)
from tests import factories

pytestmark = pytest.mark.django_db

TEMPLATES = ("a {concept} in the snow", "a {concept} on the beach", "a {concept} in a city", "a {concept} at night")
FORM = {
    "win_rate": 0.6,
    "power": 0.8,
    "alpha": 0.05,
    "tie_rate": 0.2,
    "model": "crossed",
    "design_effect": 1.5,
    "rater_share": 0.05,
    "subject_share": 0.03,
    "prompt_share": 0.03,
    "subject_prompt_share": 0.02,
}


def _study(comparisons: int, seeds: int = 2, **fields) -> Study:
    study = factories.study_with_images(methods=comparisons + 1, concepts=1, seeds=seeds)
    Study.objects.filter(pk=study.pk).update(**fields)
    study.refresh_from_db()
    return study


def test_one_comparison_three_questions_matches_the_hand_computed_numbers():
    # Family of 3 tests: alpha 0.05 / 3, z_{1 - 0.05/6} = 2.393980.
    # n_dec = (2.393980 * 0.5 + 0.841621 * 0.489898)^2 / 0.01 = (1.196990 + 0.412307)^2 / 0.01 = 258.98 -> 259
    # N = 258.98 * 2 / 0.75 = 690.6 -> 691
    study = _study(comparisons=1)
    result = study_plan(study, win_rate=0.6, power=0.8, alpha=0.05, tie_rate=0.25, model=DESIGN_EFFECT, design_effect=2)
    assert result.tests == 3
    assert result.plan.alpha_per_test == pytest.approx(0.05 / 3)
    assert (result.plan.n_decisive, result.plan.n_total) == (259, 691)


def test_five_comparisons_give_the_spec_example_of_fifteen_tests():
    # Spec 2.8: alpha / 15 -> z = 2.935199; n_dec = (1.467600 + 0.412307)^2 / 0.01 = 353.41 -> 354, N = 942.41 -> 943.
    study = _study(comparisons=5, seeds=1)
    result = study_plan(study, win_rate=0.6, power=0.8, alpha=0.05, tie_rate=0.25, model=DESIGN_EFFECT, design_effect=2)
    assert result.tests == 15
    assert (result.plan.n_decisive, result.plan.n_total) == (354, 943)
    assert len(result.comparisons) == 5


def test_no_correction_no_ties_no_clustering_gives_the_plain_binomial_number():
    # With a family of one test: (0.979982 + 0.412307)^2 / 0.01 = 193.85 -> 194 (spec: ~194).
    from studyapp.stats import plan_sample_size

    assert plan_sample_size(0.6, power=0.8, alpha=0.05).n_decisive == 194
    assert plan_sample_size(0.6, power=0.8, alpha=0.05, tie_rate=0.25, design_effect=2).n_total == 517


def test_current_numbers_count_pairs_ratings_and_the_overlap_extra():
    # 1 concept x 2 prompts x 10 seeds = 20 pairs; 3 ratings each, 10% overlap (2 pairs) rated 5 times: 60 + 2 x 2.
    study = _study(comparisons=1, seeds=10, ratings_per_pair=3, overlap_fraction=0.1, overlap_ratings=5)
    row = study_plan(study).comparisons[0]
    assert (row.usable_slots, row.pairs_built, row.answers_planned) == (20, 0, 64)
    build_pairs(study)
    row = study_plan(study).comparisons[0]
    assert row.pairs_built == 20
    built = study.pairs.all()
    assert sum(p.target_ratings for p in built) == row.answers_planned == answers_planned(study, 20)


def test_shortfall_and_the_ratings_per_pair_that_would_be_enough():
    study = _study(comparisons=1, seeds=10, ratings_per_pair=3, overlap_fraction=0.0)
    spec = {"win_rate": 0.6, "alpha": 0.05, "power": 0.8, "tie_rate": 0.25, "design_effect": 2}
    row = study_plan(study, model=DESIGN_EFFECT, **spec).comparisons[0]
    assert row.answers_needed == 691 and row.answers_planned == 60
    assert not row.enough and row.short_by == 631
    assert row.ratings_per_pair_needed == 35  # ceil(691 / 20)


def test_raters_needed_leave_room_for_gold_and_attention_items():
    # Quota 40, gold 0.1 -> 4, attention 0.05 -> 2: 34 regular pairs per rater; 2 comparisons x 20 pairs x 3 = 120.
    study = _study(comparisons=2, seeds=10, pairs_per_rater=40, gold_rate=0.1, attention_rate=0.05, overlap_fraction=0)
    assert regular_per_rater(study) == 34
    result = study_plan(study)
    assert result.answers_planned == 120
    assert result.raters_needed == 4  # ceil(120 / 34)


def test_raters_needed_is_at_least_the_ratings_per_pair_when_there_are_few_pairs():
    # 4 pairs rated 3 times: a rater can take each pair once, so 12 answers need 3 raters, not 1.
    study = _study(comparisons=1, seeds=2, pairs_per_rater=80, ratings_per_pair=3, overlap_fraction=0)
    result = study_plan(study)
    assert result.answers_planned == 12
    assert result.raters_needed == 3


def test_planner_form_refuses_a_win_rate_at_chance():
    form = PlannerForm({**FORM, "win_rate": 0.5})
    assert not form.is_valid() and "win_rate" in form.errors
    form = PlannerForm({**FORM, "win_rate": 0.65, "power": 0.9})
    assert form.is_valid()
    assert form.plan_arguments()["power"] == 0.9


def test_planner_form_refuses_shares_that_exceed_an_answers_variance():
    form = PlannerForm({**FORM, "rater_share": 0.5, "subject_share": 0.3, "prompt_share": 0.2})
    assert not form.is_valid()
    assert "add up to less than 1" in " ".join(form.non_field_errors())


def test_the_crossed_plan_uses_each_comparisons_subjects_and_prompts():
    study = factories.study_with_images(methods=2, concepts=3, seeds=2, templates=TEMPLATES)
    comparison = study.comparisons.get()
    design = comparison_design(study, comparison, tie_rate=0.25, n_comparisons=1)
    assert (design.n_subjects, design.n_prompts) == (3, 4)
    row = study_plan(study, win_rate=0.6).comparisons[0]
    assert row.plan.method == "crossed" and row.design == design
    components = stats.VarianceComponents(rater=0.012, subject=0.0072, prompt=0.0072, subject_prompt=0.0048)
    expected = stats.plan_sample_size(
        0.6, power=0.8, alpha=0.05, n_comparisons=3, tie_rate=0.25, components=components, design=design
    )
    assert row.answers_needed == expected.n_total  # the default shares 0.05/0.03/0.03/0.02 of 0.6 x 0.4


def test_few_subjects_make_the_target_out_of_reach_unless_the_subject_is_fixed():
    study = factories.study_with_images(methods=2, concepts=2, seeds=2, templates=TEMPLATES)
    shares = {"rater_share": 0.05, "subject_share": 0.3, "prompt_share": 0.0, "subject_prompt_share": 0.0}
    row = study_plan(study, win_rate=0.6, **shares).comparisons[0]
    assert row.answers_needed is None and row.short_by is None and not row.enough
    assert row.plan.largest_power < 0.8
    Study.objects.filter(pk=study.pk).update(fixed_factors=["subject"])
    study.refresh_from_db()
    fixed = study_plan(study, win_rate=0.6, **shares).comparisons[0]
    assert fixed.answers_needed is not None and fixed.plan.reachable


def test_the_half_width_at_the_planned_answers_shrinks_with_more_ratings_per_pair():
    study = factories.study_with_images(methods=2, concepts=4, seeds=3, templates=TEMPLATES)
    narrow = study_plan(_restudy(study, ratings_per_pair=12, pairs_per_rater=8)).comparisons[0]
    wide = study_plan(_restudy(study, ratings_per_pair=3, pairs_per_rater=8)).comparisons[0]
    assert 0 < narrow.half_width_planned < wide.half_width_planned < 0.5
    assert wide.half_width_label.startswith("±") and wide.half_width_label.endswith(" points")
    one_subject = study_plan(_study(comparisons=1, seeds=2)).comparisons[0]
    assert one_subject.half_width_label == "over ±50 points: too few subjects or prompts"


def _restudy(study: Study, **fields) -> Study:
    Study.objects.filter(pk=study.pk).update(**fields)
    study.refresh_from_db()
    return study
