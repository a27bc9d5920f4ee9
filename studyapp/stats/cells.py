"""Rows of an analysis mapped to cells (comparison x question) and to count columns.

A cell's counts are kept by screen side and outcome: column = cell * 6 + side * 3 + outcome, with
side 1 = A on the left and outcome 0 = A won, 1 = tie, 2 = B won. Win rates, the bootstrap and
Bradley-Terry all read this one mapping.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from studyapp.stats.answers import FACTORS, AnswerTable, ComparisonSpec, codes


@dataclass(frozen=True)
class Cells:
    """The kept rows of an analysis (no check rows, declared comparisons and questions only)."""

    comparisons: tuple[ComparisonSpec, ...]
    questions: np.ndarray
    labels: dict[str, np.ndarray]  # factor -> distinct ids
    factor_codes: dict[str, np.ndarray]  # factor -> code per kept row
    cell: np.ndarray  # comparison index * n_questions + question index
    column: np.ndarray  # cell * 6 + side * 3 + outcome column
    outcome: np.ndarray

    @property
    def n_cells(self) -> int:
        return len(self.comparisons) * self.questions.size

    def spec(self, index: int) -> ComparisonSpec:
        return self.comparisons[index // self.questions.size]

    def question(self, index: int) -> int:
        return int(self.questions[index % self.questions.size])

    def counts(self) -> np.ndarray:
        """Counts per (cell, side, outcome): shape (n_cells, 2, 3)."""
        return np.bincount(self.column, minlength=self.n_cells * 6).reshape(self.n_cells, 2, 3).astype(float)


def position_in(values: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Index of each value in ``ids`` (distinct; every value is present)."""
    order = np.argsort(ids, kind="stable")
    return order[np.searchsorted(ids[order], values)]


def build_cells(table: AnswerTable, comparisons: Sequence[ComparisonSpec], questions: Sequence[int] | None) -> Cells:
    comparisons = tuple(comparisons)
    ids = np.array([c.id for c in comparisons], np.int64)
    if np.unique(ids).size != ids.size:
        raise ValueError(f"comparisons: expected distinct ids, got {ids.tolist()}")
    question_ids = np.unique(table.question[~table.is_check]) if questions is None else np.asarray(questions, np.int64)
    if np.unique(question_ids).size != question_ids.size:
        raise ValueError(f"questions: expected distinct ids, got {question_ids.tolist()}")
    keep = ~table.is_check & np.isin(table.comparison, ids) & np.isin(table.question, question_ids)
    comparison_index = position_in(table.comparison[keep], ids)
    question_index = position_in(table.question[keep], question_ids)
    labels, factor_codes = {}, {}
    for factor in FACTORS:
        labels[factor], factor_codes[factor] = codes(getattr(table, factor)[keep])
    cell = comparison_index * question_ids.size + question_index
    outcome = table.outcome[keep]
    column = cell * 6 + table.left_is_a[keep].astype(np.int64) * 3 + (1 - outcome.astype(np.int64))
    return Cells(comparisons, question_ids, labels, factor_codes, cell, column, outcome)
