"""The pigeonhole bootstrap over crossed factors, kept as a selectable alternative to the default.

Each replicate draws every random factor's levels independently (raters, subjects, prompts); an
answer's weight is the product of the times its rater, its subject and its prompt were drawn
(Owen 2007; Owen & Eckles 2012 for more factors and for independent Poisson(1) weights). With
no random factor the answers themselves are resampled. It is conservative: a pair of answers
sharing j of the factors gets 2^j - 1 times its covariance, so the answer-level noise counts
seven times with three factors (McCullagh 2000: no bootstrap is exact for crossed designs).

Intervals are order statistics of the replicates and the p-value is the smallest level at which
that interval excludes the null, so they agree by construction; the p-value cannot fall below
2 / (B + 1) for B defined replicates (`pvalue_floor`).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Sequence

import numpy as np
from scipy import sparse

from studyapp.stats.cells import Cells

WEIGHT_CHOICES = ("multinomial", "poisson")


def cluster_weights(rng: np.random.Generator, n_clusters: int, n_resamples: int, kind: str) -> np.ndarray:
    """(n_clusters, n_resamples) float32 weights: times each cluster is drawn in each replicate.

    'multinomial' draws n_clusters clusters with replacement (the ordinary bootstrap);
    'poisson' gives each cluster an independent Poisson(1) count (Owen & Eckles 2012).
    """
    if n_clusters == 0:
        return np.zeros((0, n_resamples), np.float32)
    if kind == "poisson":
        return rng.poisson(1.0, size=(n_clusters, n_resamples)).astype(np.float32)
    drawn = rng.integers(0, n_clusters, size=(n_resamples, n_clusters))
    drawn += np.arange(n_resamples)[:, None] * n_clusters
    counts = np.bincount(drawn.ravel(), minlength=n_resamples * n_clusters).reshape(n_resamples, n_clusters)
    return np.ascontiguousarray(counts.T, dtype=np.float32)


def replicate_counts(
    cells: Cells, n_resamples: int, rng: np.random.Generator, factors: Sequence[str], weights: str
) -> np.ndarray:
    """Weighted counts per replicate: shape (n_resamples, n_cells, 2, 3), float32 (exact: integers).

    Answers are collapsed to unique (comparison, levels of the resampled factors, count column)
    keys; a replicate's counts are then one gather of per-factor weights per key and a sparse
    product, one comparison and chunk at a time to bound memory.
    """
    n_columns = cells.n_cells * 6
    if cells.cell.size == 0 or n_resamples == 0:
        return np.zeros((n_resamples, cells.n_cells, 2, 3), np.float32)
    if not factors:  # every factor fixed: resample the answers themselves
        full = np.bincount(cells.column, minlength=n_columns)
        if weights == "poisson":
            draws = rng.poisson(np.broadcast_to(full, (n_resamples, n_columns)))
        else:
            draws = rng.multinomial(full.sum(), full / full.sum(), size=n_resamples)
        return draws.astype(np.float32).reshape(n_resamples, cells.n_cells, 2, 3)
    factor_weights = [cluster_weights(rng, cells.labels[f].size, n_resamples, weights) for f in factors]
    sizes = [cells.labels[f].size for f in factors]
    block_columns = cells.questions.size * 6
    block, within = np.divmod(cells.column, block_columns)
    key = block.astype(np.int64)
    for factor, size in zip(factors, sizes, strict=True):
        key = key * size + cells.factor_codes[factor]
    key = key * block_columns + within
    unique_key, count = np.unique(key, return_counts=True)  # sorted by comparison block
    rest, within = np.divmod(unique_key, block_columns)
    levels = []
    for size in reversed(sizes):
        rest, level = np.divmod(rest, size)
        levels.append(level)
    levels.reverse()
    block = rest
    out = np.zeros((n_columns, n_resamples), np.float32)
    bounds = np.searchsorted(block, np.arange(len(cells.comparisons) + 1))
    chunk = max(1, 1_000_000 // n_resamples)  # keeps each weight block near cache size
    for b in range(len(cells.comparisons)):
        lo, hi = bounds[b], bounds[b + 1]
        if lo == hi:
            continue
        level_keys = np.stack([level[lo:hi] for level in levels], axis=1)
        distinct, inverse = np.unique(level_keys, axis=0, return_inverse=True)
        # sparse (count column x level key) matrix: a single-threaded product stays fast on a busy machine
        design = sparse.csc_matrix(
            (count[lo:hi].astype(np.float32), (within[lo:hi], inverse.reshape(-1))),
            shape=(block_columns, distinct.shape[0]),
        )
        for start in range(0, distinct.shape[0], chunk):
            stop = start + chunk
            weight = factor_weights[0][distinct[start:stop, 0]]
            for i in range(1, len(factors)):
                weight *= factor_weights[i][distinct[start:stop, i]]
            out[b * block_columns : (b + 1) * block_columns] += design[:, start:stop] @ weight
    return np.ascontiguousarray(out.T).reshape(n_resamples, cells.n_cells, 2, 3)


@contextlib.contextmanager
def quiet_nan_warnings():
    """All-NaN columns (cells without decided answers) are expected; their result is NaN."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def defined_count(replicates: np.ndarray) -> np.ndarray:
    return (~np.isnan(replicates)).sum(axis=0)


def pvalue_floor(replicates: np.ndarray) -> np.ndarray:
    """Smallest attainable two-sided p per column: 2 / (B_defined + 1)."""
    with np.errstate(divide="ignore"):
        return np.minimum(1.0, 2.0 / (defined_count(replicates) + 1))


def bootstrap_pvalue(replicates: np.ndarray, null: float = 0.5) -> np.ndarray:
    """p = 2 (min(#replicates <= null, #replicates >= null) + 1) / (B + 1), over defined replicates."""
    defined = ~np.isnan(replicates)
    n = defined.sum(axis=0)
    below = ((replicates <= null) & defined).sum(axis=0)
    above = ((replicates >= null) & defined).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.minimum(1.0, 2 * (np.minimum(below, above) + 1) / (n + 1))
    return np.where(n > 0, p, np.nan)


def order_statistic_interval(replicates: np.ndarray, level, bounds=(0.0, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval per column at ``level`` (scalar or per column), as order statistics.

    With k = ceil(a (B + 1) / 2) - 1 for a = 1 - level, the bounds are the k-th smallest and
    k-th largest replicate, so the interval excludes ``null`` exactly when `bootstrap_pvalue` < a.
    With k < 1 the bound is the end of ``bounds`` (the replicates cannot say more).
    """
    ordered = np.sort(replicates, axis=0)  # NaN last
    n = defined_count(replicates)
    a = 1 - np.broadcast_to(np.asarray(level, float), n.shape)
    k = np.ceil(a * (n + 1) / 2 - 1e-12).astype(np.int64) - 1
    columns = np.arange(n.size)
    usable = (k >= 1) & (n > 0)
    low_index = np.clip(k - 1, 0, max(ordered.shape[0] - 1, 0))
    high_index = np.clip(n - k, 0, max(ordered.shape[0] - 1, 0))
    if ordered.shape[0] == 0:
        nan = np.full(n.shape, np.nan)
        return nan, nan
    low_end, high_end = bounds if bounds is not None else (-np.inf, np.inf)
    low = np.where(usable, ordered[low_index, columns], low_end)
    high = np.where(usable, ordered[high_index, columns], high_end)
    low = np.where(n > 0, low, np.nan)
    high = np.where(n > 0, high, np.nan)
    return low, high
