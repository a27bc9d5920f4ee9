"""Automatic metrics beside the human answers: A - B differences, and whether a metric agrees with raters.

Both are ratio estimators over rows that share subjects and prompts (and, for agreement, raters),
so their intervals come from the same crossed random-factor variance as the win rates, with the
same t reference and the same fallback where a factor has too few levels.

- `metric_difference`: mean over image slots (subject, prompt, seed) of metric(A's image) -
  metric(B's image), paired by slot, clustered by subject and prompt.
- `metric_agreement`: among decided human answers, the share where the metric (higher is better)
  prefers the same method, clustered by rater, subject and prompt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from studyapp.stats.answers import TIE
from studyapp.stats.crossed_variance import ClusterLayout, ratio_variance
from studyapp.stats.intervals import ConfidenceInterval, t_interval, t_pvalue, wilson_interval
from studyapp.stats.validation import check_level
from studyapp.stats.win_rates import MIN_CLUSTERS, PLURAL


@dataclass(frozen=True)
class MetricDifferenceResult:
    """Mean paired difference metric(A) - metric(B) with its interval and a test of "no difference"."""

    n: int  # image slots with both metrics
    mean_a: float
    mean_b: float
    difference: float
    difference_ci: ConfidenceInterval
    standard_error: float
    df: float
    pvalue: float
    n_subjects: int
    n_prompts: int
    random_factors: tuple[str, ...]
    confidence_level: float
    warnings: tuple[str, ...]


def metric_difference(
    metric_a: Sequence[float],
    metric_b: Sequence[float],
    *,
    subject: Sequence[int],
    prompt: Sequence[int],
    random_factors: Sequence[str] = ("subject", "prompt"),
    confidence_level: float = 0.95,
) -> MetricDifferenceResult:
    """One row per image slot: A's and B's metric, the slot's subject and prompt. Rows with a missing
    metric are skipped. ``random_factors``: which of subject and prompt are random."""
    confidence_level = check_level(confidence_level)
    a, b = np.asarray(metric_a, float), np.asarray(metric_b, float)
    columns = {"subject": np.asarray(subject), "prompt": np.asarray(prompt)}
    _check_lengths({"metric_a": a, "metric_b": b, **columns})
    random = tuple(f for f in ("subject", "prompt") if f in random_factors)
    if set(random_factors) - {"subject", "prompt"}:
        raise ValueError(f"random_factors: expected names from ('subject', 'prompt'), got {list(random_factors)!r}")
    keep = ~np.isnan(a) & ~np.isnan(b)
    found = _ratio(a[keep] - b[keep], np.ones(int(keep.sum())), {k: v[keep] for k, v in columns.items()}, random)
    warnings = _few_levels(found.clusters, random)
    low, high = t_interval(found.estimate, found.se, found.df, confidence_level, bounds=None)
    if not found.usable:
        low = high = np.nan
        warnings += ("no interval: the difference has no spread or a random factor has one level",)
    pvalue = float(t_pvalue(found.estimate, found.se, found.df, null=0.0)) if found.usable else float("nan")
    return MetricDifferenceResult(
        int(keep.sum()),
        float(np.mean(a[keep])) if keep.any() else float("nan"),
        float(np.mean(b[keep])) if keep.any() else float("nan"),
        float(found.estimate),
        ConfidenceInterval(float(low), float(high)),
        float(found.se),
        float(found.df),
        pvalue,
        int(found.clusters["subject"]),
        int(found.clusters["prompt"]),
        random,
        confidence_level,
        warnings,
    )


@dataclass(frozen=True)
class MetricAgreementResult:
    """Share of decided human answers where the metric picks the same method."""

    n: int  # decided answers where the metric is not tied
    n_agree: int
    share: float
    share_ci: ConfidenceInterval
    metric_ties: int
    interval_method: str  # 'crossed', or 'wilson' (no clusters given, or a fallback)
    standard_error: float
    df: float
    random_factors: tuple[str, ...]
    confidence_level: float
    warnings: tuple[str, ...]


def metric_agreement(
    outcome: Sequence[int],
    metric_a: Sequence[float],
    metric_b: Sequence[float],
    *,
    rater: Sequence[int] | None = None,
    subject: Sequence[int] | None = None,
    prompt: Sequence[int] | None = None,
    confidence_level: float = 0.95,
) -> MetricAgreementResult:
    """Does a metric (higher is better) pick the same winner as the humans? Human ties and rows
    with a missing metric are skipped; equal metric values are counted as ``metric_ties``.

    Pass the rows of one question with each row's ``rater``, ``subject`` and ``prompt``: those given
    are random factors of the interval. With none given the interval is Wilson's, which treats the
    answers as independent, and says so.
    """
    confidence_level = check_level(confidence_level)
    outcome = np.asarray(outcome, np.int64)
    a, b = np.asarray(metric_a, float), np.asarray(metric_b, float)
    given = {
        name: np.asarray(v) for name, v in (("rater", rater), ("subject", subject), ("prompt", prompt)) if v is not None
    }
    _check_lengths({"outcome": outcome, "metric_a": a, "metric_b": b, **given})
    usable = (outcome != TIE) & ~np.isnan(a) & ~np.isnan(b)
    metric_says = np.sign(a - b)
    ties = int((usable & (metric_says == 0)).sum())
    usable &= metric_says != 0
    n = int(usable.sum())
    agree = metric_says[usable] == outcome[usable]
    share = float(agree.mean()) if n else float("nan")
    naive = wilson_interval(int(agree.sum()), n, confidence_level)
    if not given:
        warning = ("answers treated as independent: no rater, subject or prompt given",)
        return MetricAgreementResult(
            n, int(agree.sum()), share, naive, ties, "wilson", float("nan"), float("nan"), (), confidence_level, warning
        )
    random = tuple(given)
    if n == 0:
        return MetricAgreementResult(
            0,
            0,
            share,
            naive,
            ties,
            "wilson",
            float("nan"),
            float("nan"),
            random,
            confidence_level,
            ("no decided answer with both metrics",),
        )
    found = _ratio(agree.astype(float), np.ones(n), {k: v[usable] for k, v in given.items()}, random)
    warnings = _few_levels(found.clusters, random)
    if found.usable:
        low, high = t_interval(found.estimate, found.se, found.df, confidence_level)
        return MetricAgreementResult(
            n,
            int(agree.sum()),
            share,
            ConfidenceInterval(float(low), float(high)),
            ties,
            "crossed",
            float(found.se),
            float(found.df),
            random,
            confidence_level,
            warnings,
        )
    effective = min([int(c) for c in found.clusters.values()] + [n])
    fallback = wilson_interval(round(share * effective) if n else 0, effective, confidence_level)
    warnings += (
        f"the crossed interval is undefined or has zero width; shown: the Wilson interval on {effective} "
        f"effective clusters",
    )
    return MetricAgreementResult(
        n,
        int(agree.sum()),
        share,
        fallback,
        ties,
        "wilson",
        float("nan"),
        float("nan"),
        random,
        confidence_level,
        warnings,
    )


@dataclass(frozen=True)
class _Ratio:
    estimate: float
    se: float
    df: float
    clusters: Mapping[str, int]
    usable: bool


def _ratio(numerator: np.ndarray, denominator: np.ndarray, factors: Mapping[str, np.ndarray], random) -> _Ratio:
    """One-cell crossed ratio (see `crossed_variance`); ``usable`` is false without a positive variance."""
    if numerator.size == 0:
        return _Ratio(float("nan"), float("nan"), float("nan"), dict.fromkeys(factors, 0), False)
    layout = ClusterLayout.build(np.zeros(numerator.size, np.int64), factors, 1)
    found = ratio_variance(layout, numerator, denominator, random, pool_df=False)
    clusters = {name: int(count[0]) for name, count in found.clusters.items()}
    se = float(np.sqrt(found.variance[0]))
    usable = bool(found.estimable[0] and np.isfinite(se) and se > 0)
    return _Ratio(float(found.estimate[0]), se, float(found.df[0]), clusters, usable)


def _few_levels(clusters: Mapping[str, int], random) -> tuple[str, ...]:
    return tuple(
        f"only {clusters[f]} {PLURAL[f]}: the interval rests on few levels"
        for f in random
        if clusters[f] < MIN_CLUSTERS
    )


def _check_lengths(columns: Mapping[str, np.ndarray]) -> None:
    sizes = {name: int(np.size(v)) for name, v in columns.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"{', '.join(sizes)}: expected equal lengths, got {', '.join(map(str, sizes.values()))}")
