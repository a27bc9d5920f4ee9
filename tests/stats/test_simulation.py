"""Simulated studies with known truth, shaped like the paper's: do the default intervals and marks keep their promises?

Each study: 200 raters x 80 pairs, 15 comparisons x 3 questions, rater, subject and prompt effects
on the log-odds, 25% ties (`studyapp.stats.simulation`). Comparisons 0-4 have true win rates from
35% to 75%; comparisons 5-14 have 50% (30 true-null cells in the Holm family of 45). The studies
are few enough for CI; bench/stats.py runs 2,000 per design and docs/statistics.md reports those.

Monte Carlo error with N_STUDIES = 64: a cell's coverage has SE 2.7 points, the pooled coverage
(2,880 intervals) about 0.4, the family-wise rate about 2.7 and the per-test rejection rate of
the 1,920 true-null tests about 0.5.
"""

import numpy as np
import pytest

from studyapp.stats.simulation import CrossedStudyDesign, population_win_rate, run_studies

N_STUDIES = 64
RATES = tuple(np.round(np.concatenate([np.linspace(0.35, 0.75, 15), np.full(30, 0.5)]), 4))
DESIGNS = {
    "30 subjects x 25 prompts": (CrossedStudyDesign(n_subjects=30, n_prompts=25, win_rates=RATES), 1.15),
    # five subjects: any valid interval pays a t quantile on few degrees of freedom (docs/statistics.md)
    "5 subjects x 10 prompts": (CrossedStudyDesign(n_subjects=5, n_prompts=10, win_rates=RATES), 1.28),
}


@pytest.fixture(scope="module", params=list(DESIGNS))
def simulated(request):
    design, width_bound = DESIGNS[request.param]
    return run_studies(design, N_STUDIES, seed=20260), width_bound


def test_true_win_rates_are_population_averages_by_quadrature():
    rng = np.random.default_rng(0)
    draws = 0.4 + rng.normal(0, 0.8, 400_000)
    assert population_win_rate(0.4, 0.8) == pytest.approx((1 / (1 + np.exp(-draws))).mean(), abs=2e-3)
    design = DESIGNS["30 subjects x 25 prompts"][0]
    assert design.true_win_rates().ravel() == pytest.approx(RATES)


@pytest.mark.slow
def test_the_default_interval_covers_the_true_win_rate_as_often_as_it_claims(simulated):
    summary, _ = simulated
    coverage = summary.coverage()
    assert 0.93 <= coverage.mean() <= 0.975
    assert coverage.min() >= 0.85  # four Monte Carlo SEs below 95% for a single cell


@pytest.mark.slow
def test_the_default_interval_is_close_to_the_ideal_width(simulated):
    summary, width_bound = simulated
    assert summary.width_ratio().mean() <= width_bound


@pytest.mark.slow
def test_marks_on_true_nulls_stay_at_the_family_wise_level(simulated):
    summary, _ = simulated
    assert summary.family_wise_rate() <= 0.05 + 2 * 0.027
    assert 0.035 <= summary.rejection_rate(0.05) <= 0.065


@pytest.mark.slow
def test_no_cell_has_a_mark_that_disagrees_with_its_interval(simulated):
    summary, _ = simulated
    assert summary.marked.any()  # the alternatives are found
    assert summary.disagreements() == 0
