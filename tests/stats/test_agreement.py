"""Krippendorff's alpha and Fleiss' kappa against published values; agreement on overlap pairs."""

import numpy as np
import pytest

from studyapp import stats
from studyapp.stats import AnswerTable
from tests.stats.builders import make_table

# Fleiss (1971), Psychological Bulletin 76(5), Table 1: 30 patients, 6 psychiatrists each, diagnoses
# (depression, personality disorder, schizophrenia, neurosis, other) as counts per patient.
FLEISS_1971 = [
    [0, 0, 0, 6, 0],
    [0, 3, 0, 0, 3],
    [0, 1, 4, 0, 1],
    [0, 0, 0, 0, 6],
    [0, 3, 0, 3, 0],
    [2, 0, 4, 0, 0],
    [0, 0, 4, 0, 2],
    [2, 0, 3, 1, 0],
    [2, 0, 0, 4, 0],
    [0, 0, 0, 0, 6],
    [1, 0, 0, 5, 0],
    [1, 1, 0, 4, 0],
    [0, 3, 3, 0, 0],
    [1, 0, 0, 5, 0],
    [0, 2, 0, 3, 1],
    [0, 0, 5, 0, 1],
    [3, 0, 0, 1, 2],
    [5, 1, 0, 0, 0],
    [0, 2, 0, 4, 0],
    [1, 0, 2, 0, 3],
    [0, 0, 0, 0, 6],
    [0, 1, 0, 5, 0],
    [0, 2, 0, 1, 3],
    [2, 0, 0, 4, 0],
    [1, 0, 0, 4, 1],
    [0, 5, 0, 1, 0],
    [4, 0, 0, 0, 2],
    [0, 2, 0, 4, 0],
    [1, 0, 5, 0, 0],
    [0, 0, 0, 0, 6],
]


def _unit_counts(matrix, categories):
    """Observers x units matrix with None for missing -> units x categories counts."""
    return np.array([[[row[u] for row in matrix].count(c) for c in categories] for u in range(len(matrix[0]))])


def test_krippendorff_alpha_nominal_reproduces_krippendorffs_worked_examples():
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability": sections A, B and C.
    binary = [[0, 1, 0, 0, 0, 0, 0, 0, 1, 0], [1, 1, 1, 0, 0, 1, 0, 0, 0, 0]]
    assert stats.krippendorff_alpha_nominal(_unit_counts(binary, [0, 1])) == pytest.approx(0.095, abs=5e-4)
    two_observers = [list("aabbdcccedda"), list("babbbcccdddd")]
    two_observers[1][8] = "e"
    assert stats.krippendorff_alpha_nominal(_unit_counts(two_observers, "abcde")) == pytest.approx(0.692, abs=5e-4)
    n = None
    four_with_missing = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, n, n, n],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, n, 3],
        [n, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, n],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, n],
    ]
    assert stats.krippendorff_alpha_nominal(_unit_counts(four_with_missing, [1, 2, 3, 4, 5])) == pytest.approx(
        0.743, abs=5e-4
    )


def test_fleiss_kappa_reproduces_fleiss_1971_table_1():
    counts = np.array(FLEISS_1971)
    assert counts.shape == (30, 5) and (counts.sum(axis=1) == 6).all()
    # the category shares Fleiss reports (.144 .144 .167 .306 .239) and his kappa, 0.430
    assert counts.sum(axis=0) / counts.sum() == pytest.approx([0.144, 0.144, 0.167, 0.306, 0.239], abs=5e-4)
    assert stats.fleiss_kappa(counts) == pytest.approx(0.430, abs=5e-4)


def test_fleiss_kappa_reproduces_the_textbook_example():
    # the worked example of the Wikipedia article "Fleiss' kappa": 10 subjects, 14 raters, 5 categories
    counts = [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
    assert stats.fleiss_kappa(counts) == pytest.approx(0.210, abs=5e-4)


def test_agreement_on_overlap_pairs_uses_only_pairs_with_several_raters():
    # pairs 0-2 rated by three raters, pair 3 by one rater (not pairable)
    table = AnswerTable.from_lists(
        comparison=[0] * 10,
        question=[0] * 10,
        rater=[1, 2, 3, 1, 2, 3, 1, 2, 3, 1],
        subject=[0] * 10,
        prompt=[0] * 10,
        pair=[0, 0, 0, 1, 1, 1, 2, 2, 2, 3],
        outcome=[1, 1, 1, -1, -1, 0, 1, 0, 1, -1],
    )
    result = stats.agreement(table, question=0, n_resamples=200, seed=1)
    assert result.n_units == 3 and result.n_answers == 9
    counts = [[3, 0, 0], [0, 1, 2], [2, 1, 0]]  # A / tie / B per unit
    assert result.krippendorff_alpha == pytest.approx(stats.krippendorff_alpha_nominal(counts))
    assert result.fleiss_kappa == pytest.approx(stats.fleiss_kappa(counts))
    assert result.raw_agreement == pytest.approx((3 + 1 + 1) / 9)  # agreeing ordered pairs / all pairs
    assert result.krippendorff_alpha_ci.low <= result.krippendorff_alpha <= result.krippendorff_alpha_ci.high


def test_agreement_without_overlap_is_undefined_not_an_error():
    result = stats.agreement(make_table([1, -1, 0]), question=0)
    assert result.n_units == 0 and np.isnan(result.krippendorff_alpha)
