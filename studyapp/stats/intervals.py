"""Confidence intervals and the p-values that invert them.

- `wilson_interval`: the score interval for k of n (Wilson 1927); with n = the effective number
  of clusters it is the fallback where a clustered interval is undefined or has zero width.
- `t_interval` / `t_pvalue`: estimate ± t_{df} · SE, the default for win rates (the SE and df come
  from `crossed_variance`); the p-value is the same statistic, so the interval at level 1 - a
  excludes the null exactly when p < a.
- `score_pvalue`: the test that the Wilson interval inverts (same consistency).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from scipy import stats as sps

from studyapp.stats.validation import check_level


class ConfidenceInterval(NamedTuple):
    low: float
    high: float


def wilson_interval(k: Any, n: Any, confidence_level: float = 0.95) -> ConfidenceInterval:
    """Wilson score interval for k successes out of n (vectorised; NaN where n == 0).

    centre = (p + z²/2n) / (1 + z²/n), half-width = z/(1 + z²/n) · sqrt(p(1-p)/n + z²/4n²)
    (Wilson 1927; Newcombe 1998, method 3). ``confidence_level`` may be an array.
    """
    level = np.asarray(confidence_level, float)
    if np.any((level <= 0) | (level >= 1)):
        check_level(float(level.ravel()[np.argmax((level <= 0) | (level >= 1))]))
    z = sps.norm.ppf(0.5 + level / 2)
    k = np.asarray(k, float)
    n = np.asarray(n, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denominator = 1 + z**2 / n
        centre = (p + z**2 / (2 * n)) / denominator
        half = z / denominator * np.sqrt(np.maximum(p * (1 - p) / n + z**2 / (4 * n**2), 0))
        low, high = np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)
    low, high = np.where(n > 0, low, np.nan), np.where(n > 0, high, np.nan)
    if low.ndim == 0:
        return ConfidenceInterval(float(low), float(high))
    return ConfidenceInterval(low, high)


def t_interval(estimate: Any, standard_error: Any, df: Any, confidence_level: Any, bounds=(0.0, 1.0)):
    """estimate ± t_{df, (1 + level)/2} · SE, clipped to ``bounds`` (None: unclipped); vectorised."""
    level = np.asarray(confidence_level, float)
    with np.errstate(invalid="ignore"):
        half = sps.t.ppf(0.5 + level / 2, df) * np.asarray(standard_error, float)
        low, high = np.asarray(estimate, float) - half, np.asarray(estimate, float) + half
    if bounds is not None:
        low, high = np.clip(low, *bounds), np.clip(high, *bounds)
    return low, high


def t_pvalue(estimate: Any, standard_error: Any, df: Any, null: float = 0.5) -> np.ndarray:
    """Two-sided p of H0: θ = null with the statistic (θ̂ - null) / SE ~ t_df."""
    with np.errstate(invalid="ignore", divide="ignore"):
        statistic = np.abs(np.asarray(estimate, float) - null) / np.asarray(standard_error, float)
        return 2 * sps.t.sf(statistic, df)


def score_pvalue(estimate: Any, n: Any, null: float = 0.5) -> np.ndarray:
    """Two-sided score test of a proportion against ``null`` on n observations (Wilson's inverse)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        statistic = np.abs(np.asarray(estimate, float) - null) / np.sqrt(null * (1 - null) / np.asarray(n, float))
        return 2 * sps.norm.sf(statistic)
