"""The answer table: a study's answers from the database, one row per (answer, question), in method space.

This is what `studyapp.stats` analyses; its SHA-256 (`data_hash`) names the data a result came from.
"""

import hashlib
import math

import numpy as np

from studyapp import stats
from studyapp.models import QUESTIONS, Answer, Comparison, Pair, Study

QUESTION_IDS = {name: index for index, name in enumerate(QUESTIONS)}  # text 0, image 1, overall 2
OUTCOME = {Answer.Choice.A: stats.A_WINS, Answer.Choice.TIE: stats.TIE, Answer.Choice.B: stats.B_WINS}


def answer_table(study: Study) -> stats.AnswerTable:
    """One row per (answer, question) in method space; check pairs give rows only for their scored
    questions, with ``check_passed`` ("Can't decide" on a check is a miss)."""
    expected = dict(Pair.objects.filter(study=study).exclude(kind=Pair.Kind.REGULAR).values_list("id", "expected"))
    answers = (
        Answer.objects.filter(pair__study=study)
        .order_by("id")
        .values_list(
            "rater_id",
            "pair_id",
            "pair__kind",
            "pair__comparison_id",
            "pair__prompt_id",
            "text",
            "image",
            "overall",
            "left_is_a",
            "response_ms",
        )
    )
    columns: dict[str, list] = {name: [] for name in stats.AnswerTable.COLUMNS}
    for rater, pair, kind, comparison, prompt, *choices, left_is_a, response_ms in answers.iterator(chunk_size=5000):
        scored = expected.get(pair, {}) if kind != Pair.Kind.REGULAR else None
        for question, choice in zip(QUESTIONS, choices, strict=True):
            if scored is not None and question not in scored:
                continue
            row = (
                -1 if comparison is None else comparison,
                QUESTION_IDS[question],
                rater,
                prompt,
                pair,
                OUTCOME[choice],
                left_is_a,
                math.nan if response_ms is None else response_ms,
                kind == Pair.Kind.GOLD,
                kind == Pair.Kind.ATTENTION,
                scored is not None and choice == scored[question],
            )
            for name, value in zip(stats.AnswerTable.COLUMNS, row, strict=True):
                columns[name].append(value)
    if not columns["outcome"]:
        return stats.AnswerTable.empty()
    return stats.AnswerTable.from_lists(**columns)


def comparison_specs(comparisons: list[Comparison]) -> list[stats.ComparisonSpec]:
    return [stats.ComparisonSpec(c.pk, c.method_a_id, c.method_b_id, label=str(c)) for c in comparisons]


def data_hash(table: stats.AnswerTable) -> str:
    """SHA-256 over every column of the analysis input, in answer order."""
    digest = hashlib.sha256()
    for name in stats.AnswerTable.COLUMNS:
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(getattr(table, name)).tobytes())
    return digest.hexdigest()
