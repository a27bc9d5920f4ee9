"""Metric differences A - B with crossed intervals, and human-metric agreement that accounts for clustering."""

import numpy as np
import pytest

from studyapp import stats


def test_metric_agreement_rejects_misaligned_inputs():
    with pytest.raises(ValueError, match="expected equal lengths, got 2, 1, 2"):
        stats.metric_agreement([1, -1], [0.1], [0.2, 0.3])


def test_metric_agreement_counts_decided_answers_where_the_metric_picks_the_same_winner():
    outcome = [1, 1, -1, -1, 0, 1]
    metric_a = [0.30, 0.20, 0.10, 0.40, 0.9, 0.25]
    metric_b = [0.10, 0.30, 0.20, 0.10, 0.1, 0.25]
    result = stats.metric_agreement(outcome, metric_a, metric_b)
    assert (result.n, result.n_agree, result.metric_ties) == (4, 2, 1)
    assert result.share == 0.5
    assert result.interval_method == "wilson" and "treated as independent" in result.warnings[0]
    assert result.share_ci == pytest.approx(stats.wilson_interval(2, 4))


def test_metric_agreement_interval_widens_when_subjects_cluster():
    # the metric agrees with the raters on some subjects and disagrees on others
    rng = np.random.default_rng(3)
    n = 4000
    subject = rng.integers(0, 8, n)
    agrees = rng.random(n) < np.where(subject < 4, 0.9, 0.3)
    outcome = np.where(rng.random(n) < 0.5, 1, -1)
    metric_a = np.where(agrees == (outcome == 1), 1.0, 0.0)
    metric_b = 1.0 - metric_a
    columns = {"rater": rng.integers(0, 200, n), "subject": subject, "prompt": rng.integers(0, 20, n)}
    clustered = stats.metric_agreement(outcome, metric_a, metric_b, **columns)
    naive = stats.metric_agreement(outcome, metric_a, metric_b)
    assert clustered.share == naive.share and clustered.interval_method == "crossed"
    width = lambda r: r.share_ci.high - r.share_ci.low  # noqa: E731
    assert width(clustered) > 4 * width(naive)
    assert clustered.share_ci.low < 0.6 < clustered.share_ci.high  # the true share over subjects


def test_metric_difference_is_the_mean_paired_difference_with_a_crossed_interval():
    rng = np.random.default_rng(5)
    subject, prompt = np.repeat(np.arange(10), 40), np.tile(np.arange(20), 20)
    subject_effect = rng.normal(0, 0.02, 10)[subject]
    metric_b = rng.normal(0.30, 0.02, 400)
    metric_a = metric_b + 0.01 + subject_effect + rng.normal(0, 0.005, 400)
    metric_a[0] = np.nan  # a missing score drops that slot
    result = stats.metric_difference(metric_a, metric_b, subject=subject, prompt=prompt)
    keep = ~np.isnan(metric_a)
    assert result.n == 399 and result.difference == pytest.approx(np.mean(metric_a[keep] - metric_b[keep]))
    assert result.mean_a - result.mean_b == pytest.approx(result.difference)
    assert result.difference_ci.low < result.difference < result.difference_ci.high
    assert (result.n_subjects, result.n_prompts) == (10, 20) and result.random_factors == ("subject", "prompt")
    half = (result.difference_ci.high - result.difference_ci.low) / 2
    naive_se = np.std(metric_a[keep] - metric_b[keep], ddof=1) / np.sqrt(399)
    assert half > 3 * 1.96 * naive_se  # ten subjects' effects dominate
    fixed = stats.metric_difference(metric_a, metric_b, subject=subject, prompt=prompt, random_factors=("prompt",))
    assert fixed.difference_ci.high - fixed.difference_ci.low < 0.5 * 2 * half


def test_metric_difference_without_spread_has_no_interval_and_says_so():
    result = stats.metric_difference([0.5] * 12, [0.4] * 12, subject=[0, 1, 2] * 4, prompt=[0, 0, 1, 1] * 3)
    assert result.difference == pytest.approx(0.1)
    assert np.isnan(result.difference_ci.low) and "no interval" in result.warnings[-1]
    with pytest.raises(ValueError, match="random_factors: expected names from"):
        stats.metric_difference([0.5], [0.4], subject=[0], prompt=[0], random_factors=("rater",))
