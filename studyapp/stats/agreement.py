"""Agreement among raters who judged the same pair: Krippendorff's alpha, Fleiss' kappa, raw agreement.

Computed per question on method-space labels (A / tie / B) over the overlap subset: pairs answered
by two or more raters. Alpha's interval is a bootstrap over pairs (Hayes & Krippendorff 2007).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from studyapp.stats.answers import AnswerTable, codes
from studyapp.stats.bootstrap import cluster_weights, order_statistic_interval
from studyapp.stats.intervals import ConfidenceInterval
from studyapp.stats.validation import check_level


def _alpha_from_units(unit_counts: np.ndarray, unit_weights: np.ndarray) -> np.ndarray:
    """Nominal alpha from per-unit category counts (units with >= 2 values) for weight rows.

    alpha = 1 - (n - 1) · sum_u (m_u² - sum_k n_uk²)/(m_u - 1) / (n² - sum_k n_k²),
    with m_u values in unit u, n = sum_u m_u and n_k = sum_u n_uk (Krippendorff 2011).
    """
    m = unit_counts.sum(axis=1)
    disagreement = (m**2 - (unit_counts**2).sum(axis=1)) / (m - 1)
    columns = np.column_stack([m, disagreement, unit_counts]).astype(unit_weights.dtype)
    totals = (unit_weights @ columns).astype(float)  # one pass over the weights
    n, weighted_disagreement, n_k = totals[..., 0], totals[..., 1], totals[..., 2:]
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = n**2 - (n_k**2).sum(axis=-1)
        alpha = 1 - (n - 1) * weighted_disagreement / expected
    return np.where(expected > 0, alpha, np.nan)


def krippendorff_alpha_nominal(unit_counts: Any) -> float:
    """Krippendorff's alpha (nominal) from a units x categories count matrix; units with fewer
    than two values are not pairable and are dropped. NaN when there is no variation at all."""
    counts = np.asarray(unit_counts, float)
    if counts.ndim != 2:
        raise ValueError(f"unit_counts: expected a units x categories matrix, got shape {counts.shape}")
    counts = counts[counts.sum(axis=1) >= 2]
    if counts.shape[0] == 0:
        return float("nan")
    return float(_alpha_from_units(counts, np.ones(counts.shape[0])))


def fleiss_kappa(unit_counts: Any) -> float:
    """Fleiss' kappa from a units x categories count matrix.

    P_i = sum_k n_ik(n_ik - 1) / (n_i(n_i - 1)), kappa = (mean P_i - sum_k p_k²) / (1 - sum_k p_k²).
    With unequal n_i (not in Fleiss 1971) each unit keeps its own n_i; units with n_i < 2 are dropped.
    """
    counts = np.asarray(unit_counts, float)
    counts = counts[counts.sum(axis=1) >= 2]
    if counts.shape[0] == 0:
        return float("nan")
    n_i = counts.sum(axis=1)
    observed = ((counts * (counts - 1)).sum(axis=1) / (n_i * (n_i - 1))).mean()
    shares = counts.sum(axis=0) / counts.sum()
    chance = (shares**2).sum()
    return float((observed - chance) / (1 - chance)) if chance < 1 else float("nan")


@dataclass(frozen=True)
class AgreementResult:
    """Agreement among raters who judged the same pair, on one question (labels: A / tie / B)."""

    question: int
    n_units: int  # pairs with at least two answers
    n_answers: int
    raw_agreement: float  # share of agreeing rater pairs within units
    fleiss_kappa: float
    krippendorff_alpha: float
    krippendorff_alpha_ci: ConfidenceInterval  # bootstrap over units (Hayes & Krippendorff 2007)
    label_shares: tuple[float, float, float]  # A won, tie, B won
    n_resamples: int
    confidence_level: float
    seed: int | None


def agreement(
    table: AnswerTable,
    *,
    question: int,
    comparisons: Sequence[int] | None = None,
    n_resamples: int = 2000,
    confidence_level: float = 0.95,
    seed: int | None = 0,
) -> AgreementResult:
    """Raw agreement, Fleiss' kappa and nominal Krippendorff's alpha over pairs answered by
    two or more raters (the overlap subset), on method-space labels."""
    return agreement_by_question(
        table,
        questions=[question],
        comparisons=comparisons,
        n_resamples=n_resamples,
        confidence_level=confidence_level,
        seed=seed,
    )[int(question)]


def agreement_by_question(
    table: AnswerTable,
    *,
    questions: Sequence[int],
    comparisons: Sequence[int] | None = None,
    n_resamples: int = 2000,
    confidence_level: float = 0.95,
    seed: int | None = 0,
) -> dict[int, AgreementResult]:
    """`agreement` for several questions; one bootstrap draw over the overlap pairs serves them all."""
    confidence_level = check_level(confidence_level)
    keep = ~table.is_check
    if comparisons is not None:
        keep &= np.isin(table.comparison, np.asarray(list(comparisons), np.int64))
    pairs, unit = codes(table.pair[keep])
    question_ids = [int(q) for q in questions]
    per_question, overlap = {}, np.zeros(pairs.size, bool)
    for question in question_ids:
        rows = table.question[keep] == question
        label = 1 - table.outcome[keep][rows].astype(np.int64)  # 0 A won, 1 tie, 2 B won
        counts = np.bincount(unit[rows] * 3 + label, minlength=pairs.size * 3).reshape(pairs.size, 3).astype(float)
        per_question[question] = counts
        overlap |= counts.sum(axis=1) >= 2
    weights = None
    if n_resamples > 0 and overlap.any():
        rng = np.random.default_rng(seed)
        weights = cluster_weights(rng, int(overlap.sum()), n_resamples, "multinomial").T  # float32: small counts
    position = np.cumsum(overlap) - 1
    results = {}
    for question, counts in per_question.items():
        units = counts.sum(axis=1) >= 2
        unit_weights = None if weights is None else weights[:, position[units]]
        results[question] = _agreement(question, counts[units], unit_weights, n_resamples, confidence_level, seed)
    return results


def _agreement(question, counts, unit_weights, n_resamples, confidence_level, seed) -> AgreementResult:
    n_units = counts.shape[0]
    nan_ci = ConfidenceInterval(float("nan"), float("nan"))
    if n_units == 0:
        nan = float("nan")
        return AgreementResult(
            question, 0, 0, nan, nan, nan, nan_ci, (nan, nan, nan), n_resamples, confidence_level, seed
        )
    m = counts.sum(axis=1)
    raw = float(((counts * (counts - 1)).sum(axis=1)).sum() / (m * (m - 1)).sum())
    alpha = float(_alpha_from_units(counts, np.ones(n_units)))
    ci = nan_ci
    if unit_weights is not None:
        low, high = order_statistic_interval(_alpha_from_units(counts, unit_weights)[:, None], confidence_level, None)
        ci = ConfidenceInterval(float(low[0]), float(high[0]))
    shares = counts.sum(axis=0) / counts.sum()
    return AgreementResult(
        question,
        n_units,
        int(m.sum()),
        raw,
        fleiss_kappa(counts),
        alpha,
        ci,
        tuple(float(s) for s in shares),
        n_resamples,
        confidence_level,
        seed,
    )
