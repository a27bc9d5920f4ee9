"""The pigeonhole bootstrap: replicate counts, weights, and intervals consistent with their p-values."""

import numpy as np
import pytest

from studyapp.stats import bootstrap
from studyapp.stats.cells import build_cells
from tests.stats.builders import simulated_study


def test_vectorised_replicates_equal_explicit_reweighting_of_every_answer():
    table, specs = simulated_study(seed=2, n_raters=12, n_subjects=4, n_prompts=7, per_rater=15)
    cells = build_cells(table, specs, None)
    n_resamples = 25
    factors = ("rater", "subject", "prompt")
    replicates = bootstrap.replicate_counts(cells, n_resamples, np.random.default_rng(4), factors, "multinomial")
    rng = np.random.default_rng(4)  # same draws, same order: raters, subjects, prompts
    weights = [bootstrap.cluster_weights(rng, cells.labels[f].size, n_resamples, "multinomial") for f in factors]
    for b in range(n_resamples):
        row_weight = np.prod([w[cells.factor_codes[f], b] for w, f in zip(weights, factors, strict=True)], axis=0)
        expected = np.bincount(cells.column, weights=row_weight, minlength=cells.n_cells * 6)
        assert replicates[b].ravel() == pytest.approx(expected)


def test_with_every_factor_fixed_the_answers_themselves_are_resampled():
    table, specs = simulated_study(seed=3)
    cells = build_cells(table, specs, None)
    replicates = bootstrap.replicate_counts(cells, 50, np.random.default_rng(0), (), "multinomial")
    assert (replicates.sum(axis=(1, 2, 3)) == cells.cell.size).all()


def test_cluster_weights_are_resamples_of_the_clusters():
    weights = bootstrap.cluster_weights(np.random.default_rng(0), 40, 100, "multinomial")
    assert weights.shape == (40, 100) and (weights.sum(axis=0) == 40).all()
    poisson = bootstrap.cluster_weights(np.random.default_rng(0), 4000, 3, "poisson")
    assert poisson.mean() == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("n_resamples", [19, 200, 2001])
def test_order_statistic_intervals_exclude_the_null_exactly_when_the_p_value_is_below_the_level(n_resamples):
    rng = np.random.default_rng(n_resamples)
    replicates = rng.normal(rng.uniform(0.45, 0.56, 300), 0.02, size=(n_resamples, 300))
    replicates[: n_resamples // 10, :5] = np.nan  # some undefined replicates
    pvalues = bootstrap.bootstrap_pvalue(replicates)
    for level in (0.8, 0.95, 0.99, 0.999):
        low, high = bootstrap.order_statistic_interval(replicates, level)
        assert np.array_equal((low > 0.5) | (high < 0.5), pvalues < 1 - level)


def test_p_values_cannot_fall_below_the_floor():
    replicates = np.full((99, 2), 0.7)
    replicates[:, 1] = np.nan
    assert bootstrap.bootstrap_pvalue(replicates)[0] == pytest.approx(2 / 100)
    assert bootstrap.pvalue_floor(replicates)[0] == pytest.approx(2 / 100)
    assert np.isnan(bootstrap.bootstrap_pvalue(replicates)[1])
