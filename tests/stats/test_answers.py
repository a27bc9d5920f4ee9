"""The answer table: validation, construction from rows, read-only columns."""

import numpy as np
import pytest

from studyapp.stats import AnswerTable
from tests.stats.builders import make_table


def test_answer_table_rejects_outcomes_outside_method_space():
    with pytest.raises(ValueError, match=r"outcome: expected \+1 \(A won\), 0 .* got 2 at row 1"):
        make_table([1, 2, 0])


def test_answer_table_rejects_columns_of_unequal_length():
    with pytest.raises(ValueError, match="expected columns of equal length"):
        AnswerTable.from_lists(
            comparison=[0, 0], question=[0], rater=[1, 2], subject=[1, 1], prompt=[1, 2], outcome=[1, -1]
        )


def test_answer_table_from_rows_reads_values_list_tuples_with_subject_and_prompt():
    rows = [(7, 0, 3, 40, 9, 1), (7, 0, 4, 41, 9, -1)]
    columns = ("comparison", "question", "rater", "subject", "prompt", "outcome")
    table = AnswerTable.from_rows(rows, columns=columns)
    assert table.rater.tolist() == [3, 4] and table.outcome.tolist() == [1, -1]
    assert table.subject.tolist() == [40, 41] and table.prompt.tolist() == [9, 9]
    assert table.left_is_a.all() and np.isnan(table.time_ms).all()
    with pytest.raises(ValueError, match="unknown \\['screen'\\]"):
        AnswerTable.from_rows(rows, columns=(*columns[:-1], "screen"))
    with pytest.raises(ValueError, match="missing required \\['subject'\\]"):
        AnswerTable.from_rows([(7, 0, 3, 9, 1)], columns=("comparison", "question", "rater", "prompt", "outcome"))


def test_answer_table_columns_are_read_only():
    table = make_table([1, -1])
    with pytest.raises(ValueError):
        table.outcome[0] = 0


def test_replace_swaps_one_column_and_keeps_the_rest():
    table = make_table([1, -1, 0], subjects=[5, 5, 6])
    flipped = table.replace(outcome=-table.outcome)
    assert flipped.outcome.tolist() == [-1, 1, 0] and flipped.subject.tolist() == [5, 5, 6]
