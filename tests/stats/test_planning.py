"""Sample sizes: the spec's design-effect table, and the crossed model checked against simulated studies."""

import numpy as np
import pytest

from studyapp import stats
from studyapp.stats.simulation import CrossedStudyDesign, run_studies, simulate_study

# one comparison x question per cell; 30 pairs per rater over 3 comparisons, 25% ties: 7.5 decided per cell
PILOT = {
    "n_subjects": 12,
    "n_prompts": 15,
    "n_comparisons": 3,
    "n_questions": 1,
    "pairs_per_rater": 30,
    "win_rates": (0.6, 0.55, 0.5),
}
DESIGN = stats.CrossedDesign(n_subjects=12, n_prompts=15, decided_per_rater=7.5)


def test_sample_size_planner_reproduces_the_spec_table():
    plain = stats.plan_sample_size(0.6)
    assert plain.n_decisive == 194 and plain.method == "design effect"
    clustered = stats.plan_sample_size(0.6, tie_rate=0.25, design_effect=2.0)
    assert clustered.n_total == 517
    holm15 = stats.plan_sample_size(0.6, n_comparisons=15, tie_rate=0.25, design_effect=2.0)
    assert holm15.alpha_per_test == pytest.approx(0.05 / 15)
    assert 353 <= holm15.n_decisive <= 354 and 940 <= holm15.n_total <= 943
    assert stats.plan_sample_size(0.4).n_decisive == 194  # symmetric around 1/2


def test_sample_size_planner_rejects_impossible_targets():
    with pytest.raises(ValueError, match=r"win_rate: expected a number in \(0, 1\) other than 0\.5, got 0\.5"):
        stats.plan_sample_size(0.5)
    with pytest.raises(ValueError, match="design_effect: expected a number >= 1"):
        stats.plan_sample_size(0.6, design_effect=0.5)
    with pytest.raises(ValueError, match=r"design: expected a CrossedDesign"):
        stats.plan_sample_size(0.6, components=stats.VarianceComponents())


def test_without_factor_effects_the_crossed_plan_is_the_binomial_one():
    plan = stats.plan_sample_size(0.6, components=stats.VarianceComponents(), design=DESIGN)
    assert plan.method == "crossed" and plan.reachable
    assert plan.n_decisive == pytest.approx(stats.plan_sample_size(0.6).n_decisive, rel=0.05)
    assert plan.design_effect == pytest.approx(1.0)


def test_few_subjects_put_a_floor_under_the_width_and_a_ceiling_on_the_power():
    components = stats.VarianceComponents(subject=0.01, prompt=0.005)
    few = stats.CrossedDesign(n_subjects=5, n_prompts=10, decided_per_rater=5)
    floor = stats.plan_for_width(0.02, components=components, design=few)
    assert not floor.reachable and floor.n_decisive is None
    assert floor.smallest_half_width > 0.1  # five subjects: no number of raters gets below this
    power = stats.plan_sample_size(0.55, power=0.9, components=components, design=few, n_comparisons=45)
    assert not power.reachable and power.largest_power < 0.9
    fixed = stats.plan_for_width(0.02, components=components, design=few, random_factors=("rater", "prompt"))
    assert fixed.smallest_half_width < floor.smallest_half_width


def pilot_components() -> stats.VarianceComponents:
    """Components estimated the way a user would: analyse pilot studies (here twelve, for precision)."""
    rng = np.random.default_rng(0)
    results = []
    for _ in range(12):
        table, specs = simulate_study(CrossedStudyDesign(n_raters=300, **PILOT), rng)
        results += [row.estimate for row in stats.analyse(table, specs).rows]
    return stats.VarianceComponents.from_results(results)


@pytest.mark.slow
def test_a_study_of_the_planned_size_gets_the_width_the_planner_promised():
    components = pilot_components()
    assert components.subject > 0 and components.prompt > 0 and components.rater > 0
    for half_width in (0.08, 0.12):
        plan = stats.plan_for_width(half_width, components=components, design=DESIGN, win_rate=0.55, tie_rate=0.25)
        assert plan.reachable and plan.promised_half_width <= half_width
        summary = run_studies(CrossedStudyDesign(n_raters=plan.raters, **PILOT), 60, seed=3)
        realised = (summary.high - summary.low).mean() / 2
        # 60 studies x 3 cells: the mean half-width is known to about 1%
        assert realised == pytest.approx(plan.promised_half_width, rel=0.1)
        assert realised <= 1.02 * half_width
