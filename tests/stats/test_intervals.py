"""Wilson and t intervals against hand values and scipy, and the tests they invert."""

import numpy as np
import pytest
from scipy import stats as sps

from studyapp import stats
from studyapp.stats.intervals import score_pvalue, t_interval, t_pvalue


def test_wilson_interval_matches_hand_computation_for_8_of_10():
    # centre = (0.8 + z²/20) / (1 + z²/10), half = z/(1 + z²/10) sqrt(0.016 + z²/400), z = 1.959964
    low, high = stats.wilson_interval(8, 10)
    assert low == pytest.approx(0.4901625, abs=1e-6)
    assert high == pytest.approx(0.9433178, abs=1e-6)


@pytest.mark.parametrize(("k", "n"), [(0, 5), (1, 7), (25, 50), (49, 50), (300, 1000)])
def test_wilson_interval_agrees_with_scipy_binomtest(k, n):
    expected = sps.binomtest(k, n).proportion_ci(confidence_level=0.9, method="wilson")
    low, high = stats.wilson_interval(k, n, confidence_level=0.9)
    assert (low, high) == pytest.approx((expected.low, expected.high), abs=1e-12)


def test_wilson_interval_is_undefined_without_trials_and_rejects_bad_levels():
    assert all(np.isnan(stats.wilson_interval(0, 0)))
    with pytest.raises(ValueError, match=r"confidence_level: expected a number in \(0, 1\), got 1.5"):
        stats.wilson_interval(1, 2, confidence_level=1.5)


def test_t_interval_matches_scipy_quantiles_and_is_clipped_to_the_unit_interval():
    low, high = t_interval(0.6, 0.05, 9, 0.95)
    half = sps.t.ppf(0.975, 9) * 0.05
    assert (low, high) == pytest.approx((0.6 - half, 0.6 + half))
    assert t_interval(0.98, 0.05, 9, 0.95)[1] == 1.0
    assert t_interval(0.2, 0.5, 3, 0.95, bounds=None)[0] < -1


@pytest.mark.parametrize("level", [0.9, 0.95, 0.999])
def test_t_and_score_intervals_exclude_one_half_exactly_when_their_p_value_is_below_the_level(level):
    rng = np.random.default_rng(1)
    estimate, se, df = rng.uniform(0.3, 0.7, 500), rng.uniform(0.005, 0.1, 500), rng.uniform(2, 200, 500)
    low, high = t_interval(estimate, se, df, level)
    assert np.array_equal((low > 0.5) | (high < 0.5), t_pvalue(estimate, se, df) < 1 - level)
    n = rng.integers(2, 60, 500)
    wilson = stats.wilson_interval(estimate * n, n, level)
    assert np.array_equal((wilson.low > 0.5) | (wilson.high < 0.5), score_pvalue(estimate, n) < 1 - level)
