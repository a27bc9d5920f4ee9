"""Simulated studies with a known true win rate: does each interval cover it as often as it claims?

Raters have individual preferences (a rater effect on the log-odds of picking A) and their own
tie propensity; prompts have individual difficulty (a prompt effect). The true decisive win rate is
the population average p = E[expit(mu + a_rater + b_prompt)], which both intervals claim to cover.
"""

import numpy as np
import pytest
from scipy import special

from studyapp import stats
from studyapp.stats import AnalysisSettings, AnswerTable, ComparisonSpec

N_STUDIES = 500
N_RATERS, N_PROMPTS, PAIRS_PER_RATER = 40, 25, 20
MU, RATER_SD, PROMPT_SD = 0.4, 0.8, 0.6
N_RESAMPLES = 300


def true_decisive_win_rate(mu=MU, sd=np.hypot(RATER_SD, PROMPT_SD)):
    """E[expit(mu + sd Z)], Z ~ N(0, 1), by 80-point Gauss-Hermite quadrature."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    return float(weights @ special.expit(mu + sd * nodes) / weights.sum())


def simulate_study(rng):
    rater = np.repeat(np.arange(N_RATERS), PAIRS_PER_RATER)
    prompt = rng.integers(0, N_PROMPTS, rater.size)
    rater_effect = rng.normal(0, RATER_SD, N_RATERS)
    prompt_effect = rng.normal(0, PROMPT_SD, N_PROMPTS)
    tie_propensity = rng.beta(2, 6, N_RATERS)  # independent of the preference
    a_wins = rng.random(rater.size) < special.expit(MU + rater_effect[rater] + prompt_effect[prompt])
    tie = rng.random(rater.size) < tie_propensity[rater]
    outcome = np.where(tie, 0, np.where(a_wins, 1, -1))
    n = rater.size
    return AnswerTable(
        comparison=np.zeros(n), question=np.zeros(n), rater=rater, item=prompt, pair=np.arange(n),
        outcome=outcome, left_is_a=rng.random(n) < 0.5, time_ms=np.full(n, np.nan),
        is_gold=np.zeros(n, bool), is_attention=np.zeros(n, bool), check_passed=np.zeros(n, bool),
    )  # fmt: skip


def test_true_win_rate_quadrature_matches_monte_carlo():
    rng = np.random.default_rng(0)
    draws = MU + rng.normal(0, RATER_SD, 400_000) + rng.normal(0, PROMPT_SD, 400_000)
    assert true_decisive_win_rate() == pytest.approx(special.expit(draws).mean(), abs=2e-3)


@pytest.mark.slow
def test_cluster_bootstrap_covers_the_true_win_rate_where_wilson_does_not():
    truth = true_decisive_win_rate()
    rng = np.random.default_rng(20240607)
    bootstrap_hits = wilson_hits = 0
    bootstrap_width = wilson_width = 0.0
    for study in range(N_STUDIES):
        result = stats.win_rate(simulate_study(rng), 0, 0, n_resamples=N_RESAMPLES, seed=study)
        low, high = result.win_rate_ci
        bootstrap_hits += low <= truth <= high
        bootstrap_width += high - low
        wilson = result.wilson_ci()
        wilson_hits += wilson.low <= truth <= wilson.high
        wilson_width += wilson.high - wilson.low
    bootstrap_coverage, wilson_coverage = bootstrap_hits / N_STUDIES, wilson_hits / N_STUDIES
    print(f"coverage of p = {truth:.4f}: two-way bootstrap {bootstrap_coverage:.3f} "
          f"(mean width {bootstrap_width / N_STUDIES:.3f}), Wilson {wilson_coverage:.3f} "
          f"(mean width {wilson_width / N_STUDIES:.3f})")  # fmt: skip
    assert bootstrap_coverage >= 0.93
    assert wilson_coverage < 0.85  # the naive interval claims 95% and falls well short


@pytest.mark.slow
def test_clustered_test_holds_its_level_where_the_sign_test_does_not():
    """Under H0 (mu = 0 gives p = 1/2 exactly, by symmetry) the rater-level sign-flip test
    rejects at about 5%; the sign test, blind to clustering, rejects far more often."""
    rng = np.random.default_rng(7)
    n_studies = 300
    flip_rejections = sign_rejections = 0
    for study in range(n_studies):
        table = simulate_study(rng)
        # keep the clustering: each rater's answers lean the same way, by a rater-specific amount
        lean = rng.normal(0, RATER_SD, N_RATERS)[table.rater]
        flip = rng.random(len(table)) < special.expit(lean)
        null_outcome = np.where(table.outcome == 0, 0, np.where(flip, 1, -1))
        table = AnswerTable(**{**{n: getattr(table, n) for n in AnswerTable.COLUMNS}, "outcome": null_outcome})
        result = stats.analyse(table, [ComparisonSpec(0, 1, 2)], AnalysisSettings(n_resamples=400, seed=study))
        row = result.row(0, 0)
        flip_rejections += row.pvalue < 0.05
        sign_rejections += row.sign_test_pvalue < 0.05
    flip_rate, sign_rate = flip_rejections / n_studies, sign_rejections / n_studies
    print(f"rejections under H0: sign-flip {flip_rate:.3f}, sign test {sign_rate:.3f}")
    assert flip_rate <= 0.08
    assert sign_rate >= 0.15  # three times the nominal 5%
