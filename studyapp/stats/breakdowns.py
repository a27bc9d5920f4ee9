"""Win rates per subject and per prompt: where a method wins, and where it does not.

Each slice is a comparison x question x level of ``by``; within it the other factors keep their
roles (per subject: raters and prompts are random if declared so), with the same interval
procedure and fallbacks as the main table. These slices are exploratory: they carry
Benjamini-Hochberg q-values over all slices of the breakdown, never marks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from studyapp.stats.answers import FACTORS, AnswerTable, ComparisonSpec
from studyapp.stats.cells import build_cells
from studyapp.stats.intervals import ConfidenceInterval
from studyapp.stats.significance import benjamini_hochberg
from studyapp.stats.validation import check_choice, check_level, check_random_factors
from studyapp.stats.win_rates import MIN_CLUSTERS, PLURAL, estimate_cells

BREAKDOWN_CHOICES = ("subject", "prompt")


@dataclass(frozen=True)
class BreakdownRow:
    """The decisive win rate of one comparison x question within one subject (or prompt)."""

    comparison: int
    question: int
    by: str
    level: int  # subject id or prompt id
    wins: int
    ties: int
    losses: int
    win_rate: float
    win_rate_ci: ConfidenceInterval
    interval_method: str  # 'crossed' or the fallback 'wilson'
    pvalue: float
    qvalue: float  # Benjamini-Hochberg over every slice of this breakdown
    n_raters: int
    n_other: int  # prompts (per subject) or subjects (per prompt)
    warnings: tuple[str, ...]

    @property
    def n_decisive(self) -> int:
        return self.wins + self.losses


def win_rate_breakdown(
    table: AnswerTable,
    comparisons: Sequence[ComparisonSpec],
    *,
    by: str,
    questions: Sequence[int] | None = None,
    random_factors=FACTORS,
    confidence_level: float = 0.95,
) -> tuple[BreakdownRow, ...]:
    """One row per comparison x question x subject (``by="subject"``) or prompt with answers."""
    check_choice("by", by, BREAKDOWN_CHOICES)
    confidence_level = check_level(confidence_level)
    random = tuple(f for f in check_random_factors(random_factors) if f != by)
    cells = build_cells(table, comparisons, questions)
    n_levels = cells.labels[by].size
    slice_index = cells.cell * max(n_levels, 1) + cells.factor_codes[by]
    n_slices = cells.n_cells * max(n_levels, 1)
    others = {f: cells.factor_codes[f] for f in FACTORS if f != by}
    found = estimate_cells(
        slice_index, cells.outcome, others, n_slices, random_factors=random, confidence_level=confidence_level
    )
    inference = found.inference
    low, high = inference.interval(confidence_level)
    pvalues = inference.pvalues()
    present = found.counts.sum(axis=1) > 0
    qvalues = benjamini_hochberg(np.where(present, pvalues, np.nan))
    other = next(f for f in FACTORS if f not in ("rater", by))
    rows = []
    for index in np.flatnonzero(present):
        cell, level = divmod(int(index), max(n_levels, 1))
        wins, ties, losses = (int(v) for v in found.counts[index])
        warnings = tuple(
            f"too few {PLURAL[f]} to test: {int(found.clusters[f][index])}, {MIN_CLUSTERS} needed"
            for f in random
            if found.clusters[f][index] < MIN_CLUSTERS
        )
        rows.append(
            BreakdownRow(
                cells.spec(cell).id,
                cells.question(cell),
                by,
                int(cells.labels[by][level]),
                wins,
                ties,
                losses,
                float(found.win.estimate[index]),
                ConfidenceInterval(float(low[index]), float(high[index])),
                "wilson" if inference.fallback[index] else "crossed",
                float(pvalues[index]),
                float(qvalues[index]),
                int(found.clusters["rater"][index]),
                int(found.clusters[other][index]),
                warnings,
            )
        )
    return tuple(rows)
