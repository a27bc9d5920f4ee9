"""Win rates per cell: counts and estimates, the crossed interval, fixed factors, degenerate cells."""

import numpy as np
import pytest
from scipy import stats as sps

from studyapp import stats
from tests.stats.builders import make_table, simulated_study


def test_win_rate_counts_and_point_estimates_come_from_the_full_data():
    table = make_table([1] * 6 + [-1] * 2 + [0] * 2, raters=[1, 1, 2, 2, 3, 3, 4, 4, 5, 5])
    result = stats.win_rate(table, 0, 0, seed=3)
    assert (result.wins, result.ties, result.losses) == (6, 2, 2)
    assert result.win_rate == 0.75 and result.tie_rate == 0.2 and result.tie_half_score == 0.7
    assert result.wilson_ci() == pytest.approx(stats.wilson_interval(6, 8))
    assert (result.n_raters, result.n_subjects, result.n_prompts) == (4, 8, 8)  # with a decided answer
    assert (result.procedure, result.random_factors, result.seed) == ("crossed", ("rater", "subject", "prompt"), 3)


def test_crossed_interval_is_a_t_interval_on_the_crossed_standard_error():
    table, _ = simulated_study(seed=5)
    result = stats.win_rate(table, 10, 0)
    assert result.interval_method == "crossed" and result.testable and result.warnings == ()
    half = (result.win_rate_ci.high - result.win_rate_ci.low) / 2
    assert half == pytest.approx(sps.t.ppf(0.975, result.df) * result.standard_error)
    assert 1 <= result.df <= result.n_decisive
    assert result.standard_error**2 == pytest.approx(sum(result.variance_components.values()), rel=1e-9)


def test_the_interval_is_wider_than_wilson_when_raters_disagree():
    # ten raters who each always pick the same side: answers within a rater are copies
    raters = np.repeat(np.arange(10), 20)
    outcome = np.where(raters < 6, 1, -1)
    table = make_table(
        outcome.tolist(),
        raters=raters.tolist(),
        subjects=(np.arange(200) % 7).tolist(),
        prompts=(np.arange(200) % 20).tolist(),
    )
    result = stats.win_rate(table, 0, 0)
    wilson = result.wilson_ci()
    assert result.win_rate == 0.6
    assert (result.win_rate_ci.high - result.win_rate_ci.low) > 2.5 * (wilson.high - wilson.low)
    assert result.design_effect > 5
    assert result.variance_components["rater"] > 0.5 * result.standard_error**2


def test_independent_answers_get_about_the_wilson_width():
    rng = np.random.default_rng(8)
    outcome = np.where(rng.random(4000) < 0.15, 0, np.where(rng.random(4000) < 0.56, 1, -1))
    levels = {"raters": 400, "subjects": 30, "prompts": 25}
    table = make_table(outcome.tolist(), **{name: rng.integers(0, n, 4000).tolist() for name, n in levels.items()})
    result = stats.win_rate(table, 0, 0)
    wilson = result.wilson_ci()
    ratio = (result.win_rate_ci.high - result.win_rate_ci.low) / (wilson.high - wilson.low)
    assert 0.9 < ratio < 1.25  # the price of allowing for factor effects that are not there
    assert result.design_effect == pytest.approx(1.0, abs=0.3)


def test_declaring_subjects_fixed_narrows_the_interval_and_is_echoed():
    rng = np.random.default_rng(1)
    n = 3000
    subject = rng.integers(0, 6, n)
    a_wins = rng.random(n) < np.array([0.3, 0.4, 0.5, 0.6, 0.7, 0.8])[subject]
    table = make_table(
        np.where(a_wins, 1, -1).tolist(),
        raters=rng.integers(0, 100, n).tolist(),
        subjects=subject.tolist(),
        prompts=rng.integers(0, 20, n).tolist(),
    )
    random = stats.win_rate(table, 0, 0)
    fixed = stats.win_rate(table, 0, 0, random_factors=("rater", "prompt"))
    width = lambda r: r.win_rate_ci.high - r.win_rate_ci.low  # noqa: E731
    assert width(fixed) < 0.4 * width(random)
    assert fixed.random_factors == ("rater", "prompt") and fixed.win_rate == random.win_rate
    with pytest.raises(ValueError, match="random_factors: expected distinct names from"):
        stats.win_rate(table, 0, 0, random_factors=("rater", "seed"))


def test_one_rater_is_not_tested_and_falls_back_to_wilson_on_one_cluster():
    table = make_table([1] * 9 + [-1], raters=[7] * 10)
    for procedure in ("crossed", "bootstrap"):
        result = stats.win_rate(table, 0, 0, procedure=procedure, n_resamples=200)
        assert result.n_raters == 1 and not result.testable and np.isnan(result.pvalue)
        assert result.interval_method == "wilson"
        assert result.win_rate_ci == pytest.approx(stats.wilson_interval(0.9, 1))
        assert result.warnings[0] == "too few raters to test: 1 with a decided answer, 3 needed"
        assert "Wilson interval on 1 effective cluster" in result.warnings[1]


def test_a_zero_width_interval_falls_back_to_wilson_on_the_effective_clusters_and_says_so():
    # every answer prefers A: the clustered variance is zero, not the uncertainty
    table = make_table(
        [1] * 30, raters=list(range(30)), subjects=[i % 5 for i in range(30)], prompts=[i % 6 for i in range(30)]
    )
    for procedure in ("crossed", "bootstrap"):
        result = stats.win_rate(table, 0, 0, procedure=procedure, n_resamples=300)
        assert result.win_rate == 1.0 and result.testable and result.interval_method == "wilson"
        assert result.effective_clusters == 5  # the five subjects
        assert result.win_rate_ci == pytest.approx(stats.wilson_interval(5, 5))
        assert result.win_rate_ci.high - result.win_rate_ci.low > 0.3
        assert "undefined or has zero width" in result.warnings[0]
        assert result.pvalue < 0.05  # the score test the fallback interval inverts


def test_all_ties_give_tie_rate_one_and_an_undefined_untested_win_rate():
    table = make_table([0] * 12, raters=[1, 2, 3] * 4)
    result = stats.win_rate(table, 0, 0)
    assert np.isnan(result.win_rate) and np.isnan(result.pvalue) and not result.testable
    assert "no decided answers" in result.warnings
    assert result.tie_rate == 1.0 and result.tie_half_score == 0.5


def test_bootstrap_procedure_is_reproducible_by_seed_and_counts_undefined_resamples():
    table, _ = simulated_study(seed=5)
    first = stats.win_rate(table, 10, 0, procedure="bootstrap", n_resamples=200, seed=11)
    again = stats.win_rate(table, 10, 0, procedure="bootstrap", n_resamples=200, seed=11)
    other = stats.win_rate(table, 10, 0, procedure="bootstrap", n_resamples=200, seed=12)
    assert first == again and first.win_rate_ci != other.win_rate_ci and first.win_rate == other.win_rate
    assert first.interval_method == "bootstrap" and first.pvalue_floor == pytest.approx(2 / 201)
    with pytest.raises(ValueError, match="n_resamples: expected at least 1 for the bootstrap, got 0"):
        stats.win_rate(table, 10, 0, procedure="bootstrap", n_resamples=0)


@pytest.mark.parametrize("procedure", ["crossed", "bootstrap"])
def test_every_procedure_brackets_the_point_estimate(procedure):
    table, _ = simulated_study(seed=6)
    result = stats.win_rate(table, 11, 1, procedure=procedure, n_resamples=300, weights="poisson")
    assert result.win_rate_ci.low < result.win_rate < result.win_rate_ci.high
    assert result.tie_rate_ci.low < result.tie_rate < result.tie_rate_ci.high


def test_the_bootstrap_is_wider_than_the_crossed_interval():
    # the pigeonhole bootstrap counts answer-level noise seven times with three random factors
    table, _ = simulated_study(seed=7, n_subjects=25, n_prompts=25)
    crossed = stats.win_rate(table, 12, 2)
    boot = stats.win_rate(table, 12, 2, procedure="bootstrap", n_resamples=1000)
    width = lambda r: r.win_rate_ci.high - r.win_rate_ci.low  # noqa: E731
    assert width(boot) > 1.3 * width(crossed)
