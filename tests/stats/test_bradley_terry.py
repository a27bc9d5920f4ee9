"""Bradley-Terry: closed forms, recovery, agreement with scipy, and crossed-cluster intervals."""

import numpy as np
import pytest

from studyapp import stats
from studyapp.stats import ComparisonSpec
from studyapp.stats.bradley_terry import _inclusion_exclusion
from tests.stats.builders import make_table, simulated_study


def test_bradley_terry_half_ties_matches_the_closed_form_for_two_methods():
    # A beats B 30 times, loses 10, ties 10, sides balanced: log-odds = log((30 + 5) / (10 + 5))
    outcome = [1] * 30 + [-1] * 10 + [0] * 10
    table = make_table(outcome, raters=list(range(50)), left_is_a=[i % 2 == 0 for i in range(50)])
    result = stats.bradley_terry(table, [ComparisonSpec(0, 1, 2)], ridge=1e-8)[0]
    a, b = result.scores
    assert a - b == pytest.approx(np.log(35 / 15), abs=1e-6)
    assert a + b == pytest.approx(0, abs=1e-9) and result.converged


@pytest.mark.parametrize("procedure", ["crossed", "bootstrap"])
def test_bradley_terry_recovers_order_and_left_advantage(procedure):
    table, specs = simulated_study(seed=1, n_raters=60, per_rater=60, left_bias=0.4)
    for ties in ("half", "davidson"):
        result = stats.bradley_terry(table, specs, ties=ties, procedure=procedure, n_resamples=200, seed=0)[0]
        assert result.methods == (1, 0, 2) and result.procedure == procedure
        assert [row["method"] for row in result.ranking()] == [2, 1, 0]
        assert result.left_advantage_ci.low > 0.1
        assert result.failed_resamples == 0
        assert (result.scores_ci_low <= result.scores).all() and (result.scores <= result.scores_ci_high).all()
        assert result.ranks.tolist() == [2, 3, 1]  # separated intervals: B second, A third, C first
        assert result.dominance[2, 1] > 0.99
    assert result.tie_log_nu is not None and np.isfinite(result.tie_log_nu)


def test_crossed_intervals_match_the_model_based_ones_when_answers_are_independent():
    rng = np.random.default_rng(4)
    n = 6000
    outcome = np.where(rng.random(n) < 0.2, 0, np.where(rng.random(n) < 0.6, 1, -1))
    table = make_table(
        outcome.tolist(),
        raters=rng.integers(0, 600, n).tolist(),
        subjects=rng.integers(0, 40, n).tolist(),
        prompts=rng.integers(0, 40, n).tolist(),
        left_is_a=(rng.random(n) < 0.5).tolist(),
    )
    result = stats.bradley_terry(table, [ComparisonSpec(0, 1, 2)])[0]
    # half ties: the difference of the two log-strengths is the log-odds of a binomial score
    score = (outcome == 1).mean() + (outcome == 0).mean() / 2
    model_se = np.sqrt(1 / (n * score * (1 - score)))
    assert 2 * result.standard_errors[0] == pytest.approx(model_se, rel=0.2)


def test_crossed_intervals_widen_when_raters_cluster():
    independent, specs = simulated_study(seed=2, n_raters=60, per_rater=30)
    rng = np.random.default_rng(0)
    lean = rng.normal(0, 2.0, 60)  # strong rater preferences for the first method of each comparison
    rater_index = independent.rater - 100
    a_wins = rng.random(len(independent)) < 1 / (1 + np.exp(-lean[rater_index]))
    clustered = independent.replace(outcome=np.where(independent.outcome == 0, 0, np.where(a_wins, 1, -1)))
    narrow = stats.bradley_terry(independent, specs)[0].standard_errors
    wide = stats.bradley_terry(clustered, specs)[0].standard_errors
    assert (wide > 1.3 * narrow).all()


def test_inclusion_exclusion_counts_every_counted_set_once():
    # all three factors random: CGM's signs (+ one-way, - two-way, + three-way)
    assert [_inclusion_exclusion(mask, 7, 7) for mask in (1, 2, 4, 3, 5, 6, 7)] == [1, 1, 1, -1, -1, -1, 1]
    # subjects (bit 2) fixed: the subject-only sums drop out
    assert _inclusion_exclusion(2, 7, 0b101) == 0


def test_bradley_terry_stays_finite_when_a_method_always_wins():
    outcome = [1] * 40
    table = make_table(outcome, raters=[i % 8 for i in range(40)], left_is_a=[i % 2 == 0 for i in range(40)])
    for procedure in ("crossed", "bootstrap"):
        for ties in ("half", "davidson"):
            result = stats.bradley_terry(
                table, [ComparisonSpec(0, 1, 2)], ties=ties, procedure=procedure, n_resamples=100
            )[0]
            assert np.isfinite(result.scores).all() and result.converged
            assert result.scores[0] > result.scores[1]
            assert np.isfinite(result.scores_ci_low).all() and np.isfinite(result.scores_ci_high).all()


def test_bradley_terry_rejects_unknown_tie_handling():
    with pytest.raises(ValueError, match="ties: expected one of 'half', 'davidson', got 'elo'"):
        stats.bradley_terry(make_table([1]), [ComparisonSpec(0, 1, 2)], ties="elo")


@pytest.mark.parametrize("ties", ["half", "davidson"])
def test_bradley_terry_newton_fit_agrees_with_scipy_on_the_same_objective(ties):
    from scipy import optimize
    from scipy.special import log_expit, logsumexp

    table, specs = simulated_study(seed=12, n_raters=20, per_rater=30, left_bias=0.3)
    ridge = 0.01
    mask = table.question == 0
    method = {s.id: (s.method_a, s.method_b) for s in specs}
    index = {m: i for i, m in enumerate((1, 0, 2))}  # order of first appearance in specs
    a = np.array([index[method[c][0]] for c in table.comparison[mask]])
    b = np.array([index[method[c][1]] for c in table.comparison[mask]])
    left = np.where(table.left_is_a[mask], a, b)
    right = np.where(table.left_is_a[mask], b, a)
    outcome = table.outcome[mask]
    left_won = np.where(table.left_is_a[mask], outcome == 1, outcome == -1)
    right_won = (outcome != 0) & ~left_won

    def negative_objective(theta):
        beta, home = theta[:3], theta[3]
        eta_left, eta_right = beta[left] + home, beta[right]
        if ties == "half":
            score = np.where(outcome == 0, 0.5, left_won.astype(float))
            log_lik = score * log_expit(eta_left - eta_right) + (1 - score) * log_expit(eta_right - eta_left)
        else:
            eta_tie = theta[4] + (eta_left + eta_right) / 2
            etas = np.stack([eta_left, eta_right, eta_tie])
            chosen = np.where(left_won, eta_left, np.where(right_won, eta_right, eta_tie))
            log_lik = chosen - logsumexp(etas, axis=0)
        return -log_lik.sum() + ridge / 2 * theta @ theta

    n_params = 5 if ties == "davidson" else 4
    reference = optimize.minimize(negative_objective, np.zeros(n_params), method="BFGS", options={"gtol": 1e-8}).x
    result = stats.bradley_terry(table, specs, ties=ties, ridge=ridge, questions=[0])[0]
    assert result.scores == pytest.approx(reference[:3] - reference[:3].mean(), abs=1e-4)
    assert result.left_advantage == pytest.approx(reference[3], abs=1e-4)
    if ties == "davidson":
        assert result.tie_log_nu == pytest.approx(reference[4], abs=1e-4)
