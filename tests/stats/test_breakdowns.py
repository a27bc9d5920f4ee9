"""Per-subject and per-prompt win rates: exploratory slices with crossed intervals and BH q-values."""

import numpy as np
import pytest

from studyapp import stats
from studyapp.stats import ComparisonSpec
from tests.stats.builders import make_table


def subject_study(seed=0):
    """Method A wins 80% on subject 3 and half the time elsewhere."""
    rng = np.random.default_rng(seed)
    n = 6000
    subject = rng.integers(0, 6, n)
    a_wins = rng.random(n) < np.where(subject == 3, 0.8, 0.5)
    outcome = np.where(rng.random(n) < 0.2, 0, np.where(a_wins, 1, -1))
    return make_table(
        outcome.tolist(),
        raters=rng.integers(0, 150, n).tolist(),
        subjects=(subject + 100).tolist(),
        prompts=rng.integers(0, 15, n).tolist(),
    )


def test_per_subject_breakdown_gives_one_row_per_subject_with_its_counts():
    table = subject_study()
    rows = stats.win_rate_breakdown(table, [ComparisonSpec(0, 1, 2)], by="subject")
    assert [row.level for row in rows] == [100, 101, 102, 103, 104, 105]
    for row in rows:
        mine = (table.subject == row.level) & (table.outcome != 0)
        assert row.n_decisive == mine.sum() and row.wins == ((table.outcome == 1) & mine).sum()
        assert row.win_rate_ci.low < row.win_rate < row.win_rate_ci.high
        assert row.by == "subject" and row.n_other == 15 and row.interval_method == "crossed"
    assert [row.qvalue < 0.01 for row in rows] == [False, False, False, True, False, False]
    assert rows[3].qvalue >= rows[3].pvalue


def test_per_prompt_breakdown_treats_subjects_as_random_within_each_prompt():
    table = subject_study()
    rows = stats.win_rate_breakdown(table, [ComparisonSpec(0, 1, 2)], by="prompt")
    assert len(rows) == 15 and all(row.n_other == 6 for row in rows)
    fixed = stats.win_rate_breakdown(table, [ComparisonSpec(0, 1, 2)], by="prompt", random_factors=("rater",))
    width = lambda r: r.win_rate_ci.high - r.win_rate_ci.low  # noqa: E731
    assert np.mean([width(r) for r in fixed]) < np.mean([width(r) for r in rows])


def test_a_slice_with_few_raters_warns_and_the_choice_of_slice_is_checked():
    table = make_table([1, 1, -1, 1], raters=[1, 1, 2, 2], subjects=[5, 5, 5, 5], prompts=[1, 2, 3, 4])
    (row,) = stats.win_rate_breakdown(table, [ComparisonSpec(0, 1, 2)], by="subject")
    assert row.warnings == ("too few raters to test: 2, 3 needed",) and np.isnan(row.pvalue)
    with pytest.raises(ValueError, match="by: expected one of 'subject', 'prompt', got 'rater'"):
        stats.win_rate_breakdown(table, [ComparisonSpec(0, 1, 2)], by="rater")
