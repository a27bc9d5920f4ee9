"""Rater quality (gold accuracy, attention checks, time, side bias) and pre-registered exclusions."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from studyapp.stats.answers import TIE, AnswerTable, codes
from studyapp.stats.significance import sign_test_pvalues


@dataclass(frozen=True)
class RaterQuality:
    """Per-rater quality columns, aligned with ``raters``."""

    raters: np.ndarray
    n_answers: np.ndarray
    n_pairs: np.ndarray
    gold_answers: np.ndarray
    gold_correct: np.ndarray
    gold_accuracy: np.ndarray  # NaN without gold answers
    attention_checks: np.ndarray
    attention_failures: np.ndarray
    median_time_ms: np.ndarray  # per pair, NaN when no time was recorded
    decisive_pairs: np.ndarray  # pairs whose decisive answers lean to one side
    left_pairs: np.ndarray  # of those, pairs leaning to the left image
    left_share: np.ndarray
    left_pvalue: np.ndarray  # exact two-sided binomial test of left share = 1/2 over pairs
    study_left_share: float
    cohort_median_time_ms: float

    def rows(self) -> list[dict[str, Any]]:
        names = [f.name for f in dataclasses.fields(self) if isinstance(getattr(self, f.name), np.ndarray)]
        return [{name: getattr(self, name)[i].item() for name in names} for i in range(self.raters.size)]


def rater_quality(table: AnswerTable) -> RaterQuality:
    """Gold accuracy, attention failures, median time per pair and left-side share per rater.

    The side is judged per pair (the questions of one pair are not independent answers): a pair
    counts as "left" when most of its decisive answers chose the left image.
    """
    raters, code = codes(table.rater)
    n = raters.size
    count = lambda mask: np.bincount(code[mask], minlength=n)  # noqa: E731
    gold_answers, gold_correct = count(table.is_gold), count(table.is_gold & table.check_passed)
    # times, attention checks and the screen side belong to the pair: count each (rater, pair) once
    pair_keys = _pair_keys(code, table.pair)
    unique_keys, first, inverse = np.unique(pair_keys, return_index=True, return_inverse=True)
    pair_rows = np.zeros(code.size, bool)
    pair_rows[first] = True
    attention_pairs = count(pair_rows & table.is_attention)
    failed_pairs = _failed_check_pairs(table, code, n)
    # a pair leans left when most of its decisive answers chose the left image
    side = np.where(table.picked_left, 1.0, np.where(table.outcome != TIE, -1.0, 0.0))
    lean = np.bincount(inverse.reshape(-1), weights=side, minlength=unique_keys.size)
    pair_rater = code[first]
    decisive = np.bincount(pair_rater[lean != 0], minlength=n)
    left = np.bincount(pair_rater[lean > 0], minlength=n)
    medians = np.full(n, np.nan)
    times, time_code = table.time_ms[pair_rows], code[pair_rows]
    has_time = ~np.isnan(times)
    order = np.argsort(time_code[has_time], kind="stable")
    groups = np.split(times[has_time][order], np.searchsorted(time_code[has_time][order], np.arange(1, n)))
    for i, group in enumerate(groups):
        if group.size:
            medians[i] = np.median(group)
    pvalues = sign_test_pvalues(left, decisive - left)
    with np.errstate(invalid="ignore", divide="ignore"):
        gold_accuracy = np.where(gold_answers > 0, gold_correct / np.maximum(gold_answers, 1), np.nan)
        left_share = np.where(decisive > 0, left / np.maximum(decisive, 1), np.nan)
    total_decisive = decisive.sum()
    return RaterQuality(
        raters,
        count(np.ones(code.size, bool)),
        count(pair_rows),
        gold_answers,
        gold_correct,
        gold_accuracy,
        attention_pairs,
        failed_pairs,
        medians,
        decisive,
        left,
        left_share,
        pvalues,
        float(left.sum() / total_decisive) if total_decisive else float("nan"),
        float(np.nanmedian(medians)) if np.isfinite(medians).any() else float("nan"),
    )


def _failed_check_pairs(table: AnswerTable, code: np.ndarray, n: int) -> np.ndarray:
    """Attention-check pairs with at least one wrong answer, per rater."""
    failed = table.is_attention & ~table.check_passed
    if not failed.any():
        return np.zeros(n, np.int64)
    keys = np.unique(_pair_keys(code, table.pair)[failed])
    return np.bincount(keys // _pair_span(table.pair), minlength=n)


def _pair_span(pair: np.ndarray) -> int:
    return int(pair.max(initial=0)) - int(pair.min(initial=0)) + 1


def _pair_keys(code: np.ndarray, pair: np.ndarray) -> np.ndarray:
    """One integer per (rater code, pair); rater code = key // _pair_span(pair)."""
    return code.astype(np.int64) * _pair_span(pair) + (pair - pair.min(initial=0))


@dataclass(frozen=True)
class ExclusionRules:
    """Pre-registered exclusion rules; a rule set to None is off.

    - ``min_gold_accuracy``: exclude below this share correct (raters with >= ``min_gold_answers``).
    - ``max_attention_failures``: exclude with more failed attention checks than this.
    - ``left_share_alpha``: exclude when the left-share binomial p-value is below this
      (raters with >= ``min_decisive_for_side`` pairs that lean to one side).
    - ``min_median_time_ms``: exclude when the median time per pair is below this.
    - ``min_median_time_fraction``: exclude below this fraction of the cohort median time.
    """

    min_gold_accuracy: float | None = None
    min_gold_answers: int = 1
    max_attention_failures: int | None = None
    left_share_alpha: float | None = None
    min_decisive_for_side: int = 20
    min_median_time_ms: float | None = None
    min_median_time_fraction: float | None = None


@dataclass(frozen=True)
class ExclusionResult:
    rules: ExclusionRules
    reasons: Mapping[int, tuple[str, ...]]  # rater id -> reasons; only excluded raters

    @property
    def excluded_raters(self) -> tuple[int, ...]:
        return tuple(sorted(self.reasons))

    def counts_by_rule(self) -> dict[str, int]:
        tally: dict[str, int] = {}
        for reasons in self.reasons.values():
            for reason in reasons:
                rule = reason.split(":", 1)[0]
                tally[rule] = tally.get(rule, 0) + 1
        return tally


def apply_exclusion_rules(quality: RaterQuality, rules: ExclusionRules) -> ExclusionResult:
    """Raters that break a rule, each with readable reasons ("rule: value vs threshold")."""
    reasons: dict[int, list[str]] = {}

    def flag(mask: np.ndarray, rule: str, describe) -> None:
        for i in np.flatnonzero(mask):
            reasons.setdefault(int(quality.raters[i]), []).append(f"{rule}: {describe(i)}")

    if rules.min_gold_accuracy is not None:
        enough = quality.gold_answers >= rules.min_gold_answers
        flag(
            enough & (quality.gold_accuracy < rules.min_gold_accuracy),
            "min_gold_accuracy",
            lambda i: f"{quality.gold_accuracy[i]:.3f} < {rules.min_gold_accuracy}",
        )
    if rules.max_attention_failures is not None:
        flag(
            quality.attention_failures > rules.max_attention_failures,
            "max_attention_failures",
            lambda i: f"{quality.attention_failures[i]} > {rules.max_attention_failures}",
        )
    if rules.left_share_alpha is not None:
        enough = quality.decisive_pairs >= rules.min_decisive_for_side
        flag(
            enough & (quality.left_pvalue < rules.left_share_alpha),
            "left_share_alpha",
            lambda i: (
                f"left share {quality.left_share[i]:.3f}, p = {quality.left_pvalue[i]:.2g} < {rules.left_share_alpha}"
            ),
        )
    if rules.min_median_time_ms is not None:
        flag(
            quality.median_time_ms < rules.min_median_time_ms,
            "min_median_time_ms",
            lambda i: f"{quality.median_time_ms[i]:.0f} ms < {rules.min_median_time_ms}",
        )
    if rules.min_median_time_fraction is not None and np.isfinite(quality.cohort_median_time_ms):
        floor = rules.min_median_time_fraction * quality.cohort_median_time_ms
        flag(
            quality.median_time_ms < floor,
            "min_median_time_fraction",
            lambda i: f"{quality.median_time_ms[i]:.0f} ms < {floor:.0f} ms",
        )
    return ExclusionResult(rules, {rater: tuple(r) for rater, r in sorted(reasons.items())})
