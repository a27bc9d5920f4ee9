"""Sign tests, Holm and its per-test levels, Bonferroni, Benjamini-Hochberg, marks, the sign-flip test."""

import numpy as np
import pytest
from scipy import stats as sps

from studyapp import stats
from studyapp.stats.significance import bonferroni_levels


def test_sign_test_p_values_are_exact_binomial_tails():
    assert stats.sign_test(8, 2).pvalue == pytest.approx(112 / 1024)  # 2 (C(10,8)+C(10,9)+C(10,10)) / 2^10
    assert stats.sign_test(10, 0).pvalue == pytest.approx(2 / 1024)
    assert stats.sign_test(5, 5).pvalue == 1.0
    assert stats.sign_test(0, 0, ties=7).pvalue == 1.0
    result = stats.sign_test(8, 2, ties=3)
    assert (result.wins, result.losses, result.ties, result.statistic) == (8, 2, 3, 0.8)
    assert result.proportion_ci() == pytest.approx(stats.wilson_interval(8, 10))


@pytest.mark.parametrize(("wins", "losses"), [(3, 11), (40, 25), (117, 83)])
def test_sign_test_agrees_with_scipy_binomtest(wins, losses):
    assert stats.sign_test(wins, losses).pvalue == pytest.approx(sps.binomtest(wins, wins + losses).pvalue)


def test_holm_adjusts_by_hand():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 -> max(0.06, 0.04) = 0.06
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])
    adjusted = stats.holm([0.02, np.nan, 0.01])
    assert np.isnan(adjusted[1]) and adjusted[[0, 2]] == pytest.approx([0.02, 0.02])
    assert stats.holm([]).size == 0


def test_holm_levels_by_hand_stop_at_the_first_hypothesis_holm_keeps():
    # m = 4: steps 0.0125, 0.0167, 0.025, 0.05; p_(1) = 0.005 < 0.0125, p_(2) = 0.01 < 0.0167,
    # p_(3) = 0.03 >= 0.025: Holm stops, so ranks 3 and 4 are both tested at 0.025
    levels = stats.holm_levels([0.01, 0.04, 0.03, 0.005], 0.05)
    assert levels == pytest.approx([0.05 / 3, 0.025, 0.025, 0.0125])


@pytest.mark.parametrize("seed", range(5))
def test_a_p_value_is_below_its_holm_level_exactly_when_its_adjusted_p_value_is_below_alpha(seed):
    rng = np.random.default_rng(seed)
    p = np.concatenate([rng.uniform(0, 1, 30), rng.uniform(0, 0.003, 15)])
    assert np.array_equal(p < stats.holm_levels(p, 0.05), stats.holm(p) < 0.05)


def test_bonferroni_levels_and_adjustment():
    p = [0.01, np.nan, 0.2]
    assert bonferroni_levels(p, 0.05)[[0, 2]] == pytest.approx([0.025, 0.025])
    assert stats.bonferroni(p)[[0, 2]] == pytest.approx([0.02, 0.4])


def test_benjamini_hochberg_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04: q = min over later of p * 4 / rank -> 0.02, 0.02, 0.04, 0.04
    assert stats.benjamini_hochberg([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    q = stats.benjamini_hochberg([0.5, np.nan])
    assert q[0] == 0.5 and np.isnan(q[1])


def test_significance_marks_follow_adjusted_p():
    assert [stats.significance_mark(p) for p in (0.2, 0.04, 0.009, 0.0009, np.nan)] == ["", "*", "**", "***", ""]


def test_sign_flip_test_enumerates_small_rater_sets_exactly():
    result = stats.sign_flip_test([1, 2, 3], [1, 1, 1])
    assert result.exact and result.pvalue == pytest.approx(2 / 8)
    assert stats.sign_flip_test([1, 1, 2, 2], [1, -1, 1, -1]).pvalue == 1.0


def test_sign_flip_test_weights_raters_not_answers():
    # one prolific rater always prefers A; nine raters are split evenly: no clustered evidence
    raters = [0] * 200 + [r for r in range(1, 10) for _ in range(2)]
    outcome = [1] * 200 + [1, -1] * 9
    clustered = stats.sign_flip_test(raters, outcome, n_resamples=4000, seed=0)
    assert clustered.pvalue > 0.5
    assert stats.sign_test(209, 9).pvalue < 1e-40
    with pytest.raises(ValueError, match="n_resamples: expected at least 1, got 0"):
        stats.sign_flip_test(raters, outcome, n_resamples=0)
