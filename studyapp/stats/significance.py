"""Tests of "no preference", multiplicity and significance marks.

- `holm` adjusts the declared family's p-values (Holm 1979: valid under any dependence, which
  matters because the three questions of a comparison are strongly correlated); `holm_levels`
  gives each test the level Holm tests it at, so the adjusted interval of a cell (its interval at
  that level) excludes 1/2 exactly when Holm rejects it and the mark is shown. `bonferroni_levels`
  is the simultaneous alternative: every interval at 1 - alpha / m, jointly covering with
  probability at least 1 - alpha.
- `sign_test` (exact, naive: answers treated as independent) and `sign_flip_test` (rater-level
  randomisation) are kept as references beside the default procedure of `win_rates`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

from studyapp.stats.answers import TIE, codes
from studyapp.stats.intervals import ConfidenceInterval, wilson_interval

MULTIPLICITY_CHOICES = ("holm", "bonferroni")


@dataclass(frozen=True)
class SignTestResult:
    """Exact two-sided sign test of W against L (ties dropped): H0 says P(A | decided) = 1/2."""

    wins: int
    losses: int
    ties: int
    statistic: float  # decisive win rate W / (W + L)
    pvalue: float

    def proportion_ci(self, confidence_level: float = 0.95) -> ConfidenceInterval:
        return wilson_interval(self.wins, self.wins + self.losses, confidence_level)


def sign_test_pvalues(wins: Any, losses: Any) -> np.ndarray:
    """Two-sided exact binomial p-values against 1/2: min(1, 2 P(X >= max(W, L))), X ~ Bin(W + L, 1/2)."""
    wins, losses = np.asarray(wins, np.int64), np.asarray(losses, np.int64)
    tail = sps.binom.sf(np.maximum(wins, losses) - 1, wins + losses, 0.5)
    return np.where(wins + losses > 0, np.minimum(1.0, 2 * tail), 1.0)


def sign_test(wins: int, losses: int, ties: int = 0) -> SignTestResult:
    """Exact sign test; assumes independent answers, so it is the naive reference here."""
    wins, losses = int(wins), int(losses)
    if wins < 0 or losses < 0:
        raise ValueError(f"wins, losses: expected non-negative counts, got {wins}, {losses}")
    n = wins + losses
    pvalue = float(sign_test_pvalues(wins, losses))
    rate = wins / n if n else float("nan")
    return SignTestResult(wins, losses, int(ties), rate, pvalue)


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm step-down adjusted p-values: p̃_(k) = max_{j<=k} min(1, (m - j + 1) p_(j)).

    NaN entries are left out of the family and stay NaN.
    """
    p = np.asarray(pvalues, float)
    adjusted = np.full(p.shape, np.nan)
    present = np.flatnonzero(~np.isnan(p))
    m = present.size
    if m == 0:
        return adjusted
    order = present[np.argsort(p[present], kind="stable")]
    stepped = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted[order] = np.maximum.accumulate(stepped)
    return adjusted


def holm_levels(pvalues: Sequence[float], alpha: float) -> np.ndarray:
    """The level alpha_j at which Holm tests each hypothesis (NaN entries: NaN).

    Sorted p_(1) <= ... <= p_(m); k* is the first rank with p_(k*) >= alpha / (m - k* + 1). Rank
    j gets alpha / (m - min(j, k*) + 1): p_(j) < alpha_j exactly for the hypotheses Holm rejects.
    """
    p = np.asarray(pvalues, float)
    levels = np.full(p.shape, np.nan)
    present = np.flatnonzero(~np.isnan(p))
    m = present.size
    if m == 0:
        return levels
    order = present[np.argsort(p[present], kind="stable")]
    rank = np.arange(1, m + 1)
    step = alpha / (m - rank + 1)
    failed = np.flatnonzero(p[order] >= step)
    stop = failed[0] + 1 if failed.size else m + 1
    levels[order] = alpha / (m - np.minimum(rank, stop) + 1)
    return levels


def bonferroni_levels(pvalues: Sequence[float], alpha: float) -> np.ndarray:
    """alpha / m for every present hypothesis (NaN entries: NaN)."""
    p = np.asarray(pvalues, float)
    m = int((~np.isnan(p)).sum())
    return np.where(np.isnan(p), np.nan, alpha / max(m, 1))


def bonferroni(pvalues: Sequence[float]) -> np.ndarray:
    p = np.asarray(pvalues, float)
    m = int((~np.isnan(p)).sum())
    return np.minimum(1.0, p * m)


def significance_mark(adjusted_p: float, alpha: float = 0.05) -> str:
    """'***' below alpha/50, '**' below alpha/5, '*' below alpha, else ''."""
    if adjusted_p is None or np.isnan(adjusted_p):
        return ""
    for mark, level in (("***", alpha / 50), ("**", alpha / 5), ("*", alpha)):
        if adjusted_p < level:
            return mark
    return ""


@dataclass(frozen=True)
class SignFlipTestResult:
    """Rater-level sign-flip test: statistic = mean over raters of (W_u - L_u) / (W_u + L_u)."""

    statistic: float
    pvalue: float
    n_raters: int
    n_resamples: int
    exact: bool
    seed: int | None


def _per_rater_net(cell: np.ndarray, rater: np.ndarray, outcome: np.ndarray, n_cells: int, n_raters: int):
    index = cell.astype(np.int64) * n_raters + rater
    size = n_cells * n_raters
    net = np.bincount(index, weights=outcome.astype(float), minlength=size).reshape(n_cells, n_raters)
    decisive = np.bincount(index, weights=(outcome != TIE).astype(float), minlength=size).reshape(n_cells, n_raters)
    with np.errstate(invalid="ignore", divide="ignore"):
        score = np.where(decisive > 0, net / decisive, 0.0)
    return score, decisive > 0


def _sign_flip_pvalues(score: np.ndarray, present: np.ndarray, n_resamples: int, seed: int | None):
    """p-values per row of ``score`` (cells x raters); exact enumeration when it is cheaper."""
    n_present = present.sum(axis=1)
    n_raters = score.shape[1]
    with np.errstate(invalid="ignore", divide="ignore"):
        observed = np.where(n_present > 0, score.sum(axis=1) / n_present, np.nan)
    max_present = int(n_present.max()) if n_present.size else 0
    exact = max_present > 0 and 2**max_present <= n_resamples
    if exact:  # enumerate all sign patterns over the present raters of each cell
        pvalues = np.full(score.shape[0], np.nan)
        for row in np.flatnonzero(n_present > 0):
            values = score[row, present[row]]
            patterns = 1 - 2 * ((np.arange(2**values.size)[:, None] >> np.arange(values.size)) & 1)
            flipped = np.abs(patterns @ values) / values.size
            pvalues[row] = np.mean(flipped >= abs(observed[row]) - 1e-12)
        return observed, pvalues, True
    rng = np.random.default_rng(seed)
    signs = rng.integers(0, 2, size=(n_resamples, n_raters), dtype=np.int8).astype(np.float64) * 2 - 1
    flipped = np.abs(signs @ (score * present).T) / np.where(n_present > 0, n_present, 1)
    exceed = (flipped >= np.abs(observed) - 1e-12).sum(axis=0)
    pvalues = np.where(n_present > 0, (exceed + 1) / (n_resamples + 1), np.nan)
    return observed, pvalues, False


def sign_flip_test(
    rater: Sequence[int], outcome: Sequence[int], *, n_resamples: int = 2000, seed: int | None = 0
) -> SignFlipTestResult:
    """Clustered test of H0 "no preference": flips each rater's net score at random.

    Exact for rater clustering when sides are randomised, but it treats subjects and prompts as
    fixed, so it is a reference here, not the default test. Enumerates all sign patterns when
    2**n_raters <= n_resamples, otherwise uses ``n_resamples`` random patterns (p >= 1/(B+1)).
    """
    if int(n_resamples) < 1:
        raise ValueError(f"n_resamples: expected at least 1, got {n_resamples!r}")
    rater_labels, rater_codes = codes(np.asarray(rater, np.int64))
    outcome = np.asarray(outcome, np.int8)
    score, present = _per_rater_net(np.zeros(rater_codes.size, np.int64), rater_codes, outcome, 1, rater_labels.size)
    observed, pvalues, exact = _sign_flip_pvalues(score, present, int(n_resamples), seed)
    p = float(pvalues[0]) if present.any() else 1.0
    return SignFlipTestResult(float(observed[0]), p, int(present.sum()), int(n_resamples), exact, seed)


def benjamini_hochberg(pvalues: Sequence[float]) -> np.ndarray:
    """BH q-values (false discovery rate; Benjamini & Hochberg 1995); NaN entries stay NaN.

    For exploratory slices (per subject, per prompt), not for the declared family.
    """
    p = np.asarray(pvalues, float)
    q = np.full(p.shape, np.nan)
    present = np.flatnonzero(~np.isnan(p))
    m = present.size
    if m == 0:
        return q
    order = present[np.argsort(p[present], kind="stable")]
    scaled = p[order] * m / np.arange(1, m + 1)
    q[order] = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    return q
