"""Variance of a ratio estimator when answers are cross-classified by several random factors.

This is the engine behind every default interval and test. A cell's estimate is a ratio
θ̂ = Σ y / Σ x (for the decisive win rate: y = "A won", x = "decided"). Its linearised error
is Σ u / X with u = y - θ x and X = Σ x. Two answers are correlated when they share a rater, a
subject or a prompt; the variance of Σ u is the sum, over all pairs of answers that share at
least one factor, of their covariance.

Multiway clustering (Cameron, Gelbach & Miller 2011) estimates that sum by inclusion-exclusion
of one-way cluster sums: V = V_R + V_S + V_P - V_RS - V_RP - V_SP + V_RSP, so that pairs sharing
two factors, and the answer-level noise, are counted once. Here the same idea is written as a
method-of-moments fit of a crossed random-effects covariance: one variance component σ²_T for
every non-empty set T of factors (σ²_R for "same rater", σ²_RS for "same rater and subject", ...,
σ²_RSP for answer-level noise). The raw cluster sums of squares R_K = Σ_k (Σ_{r in k} û_r)² of
the centred û have expectations that are linear in the components,

    E[R_K] = Σ_T σ²_T · (S(K ∪ T) - 2 Q(K, T) / X + S(K) S(T) / X²),

where S(K) = Σ_k X_k² over the clusters of K and Q(K, T) = Σ_r x_r X_K(r) X_T(r). The first
term is CGM's; the other two remove the downward bias of centring at θ̂, which for a factor with
few clusters (five subjects) is about 1 / G of its variance. Solving these equations gives
unbiased components for any unbalanced crossed design; the variance of θ̂ is
V = Σ_T σ²_T S(T) / X² over the components that involve a random factor, plus the answer-level
one (a factor declared fixed drops its own component: its levels are the population). When the
sum comes out below the answer-level component alone (the other estimates summed to less than
zero), the answer-level component is used: a conservative form of CGM's fix for a negative
variance, which never counts the effects of a fixed factor.

Degrees of freedom follow Satterthwaite (1946). The component of factor T is estimated from G_T
clusters; its estimate varies like a χ² with G_T - 1 degrees of freedom scaled by everything in
T's cluster sums, not only by its own part, so its effective degrees of freedom are
(G_T - 1)·share², share = own part / whole cluster sum of squares. Plug-in Satterthwaite is
liberal when a component from few clusters happens to be estimated small (then the test
believes it has many degrees of freedom exactly when its standard error is too small);
``pool_df`` bounds each cell's degrees of freedom by those computed from the shares averaged
over all cells of the analysis, which share the design. docs/statistics.md has the simulations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

_RCOND = 1e-10  # relative singular-value cut-off when a design cannot separate two components


def subset_name(names: Sequence[str], members: Sequence[int]) -> str:
    return "×".join(names[i] for i in members)


@dataclass(frozen=True, eq=False)
class ClusterLayout:
    """Which cluster of every factor set each row belongs to, per cell.

    Rows are first collapsed into fine groups (cell x one level of every factor); each non-empty
    factor set K (a bit mask over ``factors``) maps fine groups to its clusters.
    """

    n_cells: int
    factors: tuple[str, ...]
    row_fine: np.ndarray  # row -> fine group
    fine_cell: np.ndarray  # fine group -> cell
    masks: tuple[int, ...]  # every non-empty factor set, as a bit mask; the last one is all factors
    cluster_of: tuple[np.ndarray, ...]  # per mask: fine group -> cluster
    cluster_cell: tuple[np.ndarray, ...]  # per mask: cluster -> cell

    @classmethod
    def build(cls, cell: np.ndarray, factors: Mapping[str, np.ndarray], n_cells: int) -> ClusterLayout:
        names = tuple(factors)
        columns = [np.asarray(cell, np.int64)] + [_dense(np.asarray(v)) for v in factors.values()]
        sizes = [max(int(n_cells), 1)] + [int(c.max(initial=-1)) + 1 for c in columns[1:]]
        fine, row_fine = _relabel(_combine(columns, sizes), _product(sizes))
        fine_columns = _split(fine, sizes)
        masks = tuple(sorted(range(1, 2 ** len(names)), key=lambda m: (bin(m).count("1"), m)))
        cluster_of, cluster_cell = [], []
        for mask in masks:
            keep = [0] + [1 + i for i in range(len(names)) if mask >> i & 1]
            kept_sizes = [sizes[j] for j in keep]
            clusters, index = _relabel(_combine([fine_columns[j] for j in keep], kept_sizes), _product(kept_sizes))
            cluster_of.append(index)
            cluster_cell.append(_split(clusters, kept_sizes)[0])
        return cls(int(n_cells), names, row_fine, fine_columns[0], masks, tuple(cluster_of), tuple(cluster_cell))

    def mask_name(self, mask: int) -> str:
        return subset_name(self.factors, [i for i in range(len(self.factors)) if mask >> i & 1])

    def main_masks(self) -> list[int]:
        return [1 << i for i in range(len(self.factors))]


def _dense(values: np.ndarray) -> np.ndarray:
    """Codes from 0; integer codes that are already small and non-negative are kept as they are."""
    small = values.size and np.issubdtype(values.dtype, np.integer) and values.min() >= 0
    if small and values.max() < 4 * values.size + 4096:
        return values.astype(np.int64, copy=False)
    return np.unique(values, return_inverse=True)[1].reshape(-1).astype(np.int64)


def _product(sizes: Sequence[int]) -> int:
    total = 1
    for size in sizes:
        total *= int(size)
    if total >= 2**62:
        raise ValueError(f"too many distinct levels to index together: {list(sizes)}")
    return total


def _relabel(key: np.ndarray, key_range: int) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct keys, each row's index into them); a table lookup when the range is small."""
    if key_range <= 4 * key.size + 4096:
        present = np.bincount(key, minlength=key_range) > 0
        index = np.cumsum(present) - 1
        return np.flatnonzero(present), index[key]
    distinct, index = np.unique(key, return_inverse=True)
    return distinct, index.reshape(-1)


def _combine(columns: Sequence[np.ndarray], sizes: Sequence[int]) -> np.ndarray:
    """One int64 key per row from mixed-radix digits (`_product` checks that it fits)."""
    key = np.zeros(columns[0].size, np.int64)
    for column, size in zip(columns, sizes, strict=True):
        key = key * size + column
    return key


def _split(key: np.ndarray, sizes: Sequence[int]) -> list[np.ndarray]:
    digits = []
    for size in reversed(sizes):
        key, digit = np.divmod(key, size)
        digits.append(digit)
    return digits[::-1]


@dataclass(frozen=True)
class RatioVariance:
    """Per cell: θ̂ = Σy / Σx, its variance and Satterthwaite degrees of freedom.

    ``components`` maps each factor set ("rater", "subject×prompt", ...) to its contribution to
    the variance of θ̂ (signed, before the fix for a negative total); ``covariances`` to its σ²_T,
    the covariance of two answers (per unit of x) sharing exactly that set; ``clusters`` counts the
    clusters of each factor with a positive denominator. ``estimable`` is false where a random
    factor has fewer than two such clusters (its variance cannot be estimated).
    """

    estimate: np.ndarray
    variance: np.ndarray
    df: np.ndarray
    denominator: np.ndarray
    components: Mapping[str, np.ndarray]
    covariances: Mapping[str, np.ndarray]
    clusters: Mapping[str, np.ndarray]
    estimable: np.ndarray
    random: tuple[str, ...]


def ratio_variance(
    layout: ClusterLayout,
    numerator: np.ndarray,
    denominator: np.ndarray,
    random: Sequence[str],
    *,
    pool_df: bool = True,
) -> RatioVariance:
    """Crossed random-factor variance of Σy / Σx in every cell of ``layout`` (see the module doc)."""
    return ratio_variances(layout, [numerator], denominator, random, pool_df=pool_df)[0]


def ratio_variances(
    layout: ClusterLayout,
    numerators: Sequence[np.ndarray],
    denominator: np.ndarray,
    random: Sequence[str],
    *,
    pool_df: bool = True,
) -> list[RatioVariance]:
    """`ratio_variance` for several numerators over one denominator (the moment equations are shared)."""
    unknown = set(random) - set(layout.factors)
    if unknown:
        raise ValueError(f"random: expected factors from {layout.factors}, got {sorted(unknown)}")
    shared = _SharedDenominator.build(layout, np.asarray(denominator, float))
    random_mask = sum(1 << layout.factors.index(name) for name in random)
    clusters = {
        layout.mask_name(mask): shared.positive[layout.masks.index(mask)].astype(np.int64)
        for mask in layout.main_masks()
    }
    present = shared.total_x > 0
    estimable = present & np.all([clusters[name] >= 2 for name in random] or [present], axis=0)
    return [
        _one_ratio(layout, shared, np.asarray(y, float), tuple(random), random_mask, clusters, estimable, pool_df)
        for y in numerators
    ]


@dataclass(frozen=True)
class _SharedDenominator:
    """Everything about the design and the denominator that the moment equations need."""

    x: np.ndarray  # per fine group
    total_x: np.ndarray  # per cell
    squares: np.ndarray  # (cells, sets): S(K)
    positive: tuple[np.ndarray, ...]  # per set: clusters with x > 0 per cell
    moments: np.ndarray  # (cells, sets, sets): E[R_K] = Σ_T moments[K, T] σ²_T
    inverse: np.ndarray  # its pseudo-inverse

    @classmethod
    def build(cls, layout: ClusterLayout, denominator: np.ndarray) -> _SharedDenominator:
        n_cells, n_fine = layout.n_cells, layout.fine_cell.size
        x = np.bincount(layout.row_fine, weights=denominator, minlength=n_fine)
        total_x = np.bincount(layout.fine_cell, weights=x, minlength=n_cells)
        squares, x_of, positive = [], [], []
        for i in range(len(layout.masks)):
            cluster_x = np.bincount(layout.cluster_of[i], weights=x, minlength=layout.cluster_cell[i].size)
            squares.append(np.bincount(layout.cluster_cell[i], weights=cluster_x**2, minlength=n_cells))
            positive.append(np.bincount(layout.cluster_cell[i], weights=cluster_x > 0, minlength=n_cells))
            x_of.append(cluster_x[layout.cluster_of[i]])
        s = np.stack(squares, axis=1)
        moments = _moment_matrix(layout, x, x_of, s, total_x)
        inverse = np.full(moments.shape, np.nan)
        present = total_x > 0
        if present.any():
            inverse[present] = np.linalg.pinv(moments[present], rcond=_RCOND)
        return cls(x, total_x, s, tuple(positive), moments, inverse)


def _one_ratio(layout, shared, numerator, random, random_mask, clusters, estimable, pool_df) -> RatioVariance:
    n_cells, masks, total_x = layout.n_cells, layout.masks, shared.total_x
    y = np.bincount(layout.row_fine, weights=numerator, minlength=layout.fine_cell.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        estimate = np.bincount(layout.fine_cell, weights=y, minlength=n_cells) / total_x
    u = y - np.nan_to_num(estimate)[layout.fine_cell] * shared.x
    raw_sums = np.stack(
        [
            np.bincount(
                layout.cluster_cell[i],
                weights=np.bincount(layout.cluster_of[i], weights=u, minlength=layout.cluster_cell[i].size) ** 2,
                minlength=n_cells,
            )
            for i in range(len(masks))
        ],
        axis=1,
    )
    sigma = np.einsum("cij,cj->ci", shared.inverse, raw_sums)
    with np.errstate(invalid="ignore", divide="ignore"):
        contribution = sigma * shared.squares / total_x[:, None] ** 2
    counts = np.array([(mask & random_mask) != 0 or mask == masks[-1] for mask in masks])
    answer_level = np.maximum(contribution[:, -1], 0.0)  # the finest set: answers sharing every factor
    variance = np.where(total_x > 0, np.maximum(np.where(counts, contribution, 0.0).sum(axis=1), answer_level), np.nan)
    df = _satterthwaite(layout, random_mask, sigma, shared, raw_sums, contribution, variance, pool_df)
    components = {layout.mask_name(mask): contribution[:, i] for i, mask in enumerate(masks)}
    covariances = {layout.mask_name(mask): sigma[:, i] for i, mask in enumerate(masks)}
    return RatioVariance(estimate, variance, df, total_x, components, covariances, clusters, estimable, random)


def _moment_matrix(layout: ClusterLayout, x, x_of, s, total_x) -> np.ndarray:
    """(cells, sets, sets): E[R_K] = Σ_T M[K, T] σ²_T for centred cluster sums."""
    masks, n_cells = layout.masks, layout.n_cells
    union = np.array([[masks.index(k | t) for t in masks] for k in masks])
    # Q(K, T) per cell = Σ_f x_f X_K(f) X_T(f): one small product per cell (fine groups are sorted by cell)
    weighted = np.stack(x_of, axis=1)
    bounds = np.searchsorted(layout.fine_cell, np.arange(n_cells + 1))
    q = np.zeros((n_cells, len(masks), len(masks)))
    for cell in range(n_cells):
        block = weighted[bounds[cell] : bounds[cell + 1]]
        q[cell] = (block * x[bounds[cell] : bounds[cell + 1], None]).T @ block
    with np.errstate(invalid="ignore", divide="ignore"):
        total = total_x[:, None, None]
        moments = s[:, union] - 2 * q / total + s[:, :, None] * s[:, None, :] / total**2
    return np.nan_to_num(moments)


def _satterthwaite(layout, random_mask, sigma, shared, raw_sums, contribution, variance, pool_df) -> np.ndarray:
    """Satterthwaite degrees of freedom of ``variance`` per cell (module doc), bounded by the pooled ones."""
    main = [i for i, mask in enumerate(layout.masks) if mask in layout.main_masks() and mask & random_mask]
    n_cells = layout.n_cells
    clusters = np.stack([shared.positive[i] for i in main], axis=1) if main else np.zeros((n_cells, 0))
    with np.errstate(invalid="ignore", divide="ignore"):
        own = np.maximum(np.nan_to_num(contribution[:, main]), 0.0)
        signal = shared.moments[:, main, main] * np.maximum(np.nan_to_num(sigma[:, main]), 0.0)
        share = np.clip(np.nan_to_num(signal / raw_sums[:, main], nan=1.0), 1e-9, 1.0)
        df_main = np.maximum(clusters - 1, 1.0)
        df_rest = np.maximum(shared.positive[-1] - (clusters - 1).sum(axis=1) - 1, 1.0)

        def satterthwaite(parts: np.ndarray, shares: np.ndarray) -> np.ndarray:
            rest = np.maximum(variance - parts.sum(axis=1), 0.0)
            return variance**2 / (((parts / shares) ** 2 / df_main).sum(axis=1) + rest**2 / df_rest)

        df = satterthwaite(own, share)
        usable = np.isfinite(variance) & (variance > 0)
        if pool_df and main and usable.sum() > 1:
            fraction = (own[usable] / variance[usable, None]).mean(axis=0)
            pooled_share = own[usable].sum(axis=0) / (own[usable] / share[usable]).sum(axis=0)
            pooled_share = np.clip(np.nan_to_num(pooled_share, nan=1.0), 1e-9, 1.0)
            df = np.minimum(df, satterthwaite(fraction[None, :] * variance[:, None], pooled_share[None, :]))
    return np.where(usable, np.maximum(df, 1.0), np.nan)
