"""The answer table: a study's answers from the database, one row per (answer, question), in method space.

This is what `studyapp.stats` analyses; its SHA-256 (`data_hash`) names the data a result came from.
"""

import hashlib
import math

import numpy as np
from django.db.models import Count, Max, Q

from studyapp import stats
from studyapp.models import QUESTIONS, Answer, Comparison, MetricScore, Pair, Study

QUESTION_IDS = {name: index for index, name in enumerate(QUESTIONS)}  # text 0, image 1, overall 2
OUTCOME = {Answer.Choice.A: stats.A_WINS, Answer.Choice.TIE: stats.TIE, Answer.Choice.B: stats.B_WINS}


def answer_table(study: Study) -> stats.AnswerTable:
    """One row per (answer, question) in method space, with the pair's subject (concept) and prompt
    template as the crossed factors; check pairs give rows only for their scored questions, with
    ``check_passed`` ("Can't decide" on a check is a miss)."""
    expected = dict(Pair.objects.filter(study=study).exclude(kind=Pair.Kind.REGULAR).values_list("id", "expected"))
    answers = (
        Answer.objects.filter(pair__study=study)
        .order_by("id")
        .values_list(
            "rater_id",
            "pair_id",
            "pair__kind",
            "pair__comparison_id",
            "pair__concept_id",
            "pair__prompt_id",
            "text",
            "image",
            "overall",
            "left_is_a",
            "response_ms",
        )
    )
    columns: dict[str, list] = {name: [] for name in stats.AnswerTable.COLUMNS}
    rows = answers.iterator(chunk_size=5000)
    for rater, pair, kind, comparison, subject, prompt, *choices, left_is_a, response_ms in rows:
        scored = expected.get(pair, {}) if kind != Pair.Kind.REGULAR else None
        for question, choice in zip(QUESTIONS, choices, strict=True):
            if scored is not None and question not in scored:
                continue
            row = (
                -1 if comparison is None else comparison,
                QUESTION_IDS[question],
                rater,
                subject,
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


def data_fingerprint(study: Study) -> list:
    """What the answer table is made of, in a few aggregate queries and no row per answer: answer count,
    last id and last submission, the check pairs' expected answers, and the scores of the study's images.

    Answers are only ever added (one per rater and pair) or deleted, so a change in any of them
    changes the fingerprint; the results cache keys on it and never builds the table on a hit."""
    answers = Answer.objects.filter(pair__study=study).aggregate(n=Count("id"), last=Max("id"), at=Max("submitted"))
    checks = list(
        Pair.objects.filter(study=study).exclude(kind=Pair.Kind.REGULAR).order_by("id").values_list("id", "expected")
    )
    regular = Pair.objects.filter(study=study, kind=Pair.Kind.REGULAR)
    scores = MetricScore.objects.filter(
        Q(image_id__in=regular.values("image_a_id")) | Q(image_id__in=regular.values("image_b_id"))
    ).aggregate(n=Count("id"), last=Max("id"))
    return [answers["n"], answers["last"], str(answers["at"]), checks, scores["n"], scores["last"]]


def comparison_specs(comparisons: list[Comparison]) -> list[stats.ComparisonSpec]:
    return [stats.ComparisonSpec(c.pk, c.method_a_id, c.method_b_id, label=str(c)) for c in comparisons]


def data_hash(table: stats.AnswerTable) -> str:
    """SHA-256 over every column of the analysis input, in answer order."""
    digest = hashlib.sha256()
    for name in stats.AnswerTable.COLUMNS:
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(getattr(table, name)).tobytes())
    return digest.hexdigest()
