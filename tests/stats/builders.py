"""Small answer tables for the statistics tests."""

import numpy as np

from studyapp.stats import AnswerTable, ComparisonSpec


def make_table(outcomes, raters=None, subjects=None, prompts=None, comparison=0, question=0, left_is_a=None, **extra):
    """One comparison and question; by default every answer has its own rater, subject and prompt."""
    n = len(outcomes)
    return AnswerTable.from_lists(
        comparison=[comparison] * n,
        question=[question] * n,
        rater=list(range(n)) if raters is None else raters,
        subject=list(range(n)) if subjects is None else subjects,
        prompt=list(range(n)) if prompts is None else prompts,
        outcome=outcomes,
        left_is_a=left_is_a,
        **extra,
    )


def simulated_study(
    seed=0, n_raters=30, n_subjects=8, n_prompts=20, per_rater=40, method_strength=(0.0, 0.6, 1.2), left_bias=0.0
):
    """Three methods, all three comparisons, three questions; raters have effects."""
    rng = np.random.default_rng(seed)
    specs = [ComparisonSpec(10, 1, 0, "B vs A"), ComparisonSpec(11, 2, 0, "C vs A"), ComparisonSpec(12, 2, 1, "C vs B")]
    n = n_raters * per_rater
    rater = np.repeat(np.arange(n_raters), per_rater) + 100
    subject = rng.integers(0, n_subjects, n) + 300
    prompt = rng.integers(0, n_prompts, n) + 500
    comparison = rng.integers(0, 3, n)
    left = rng.random(n) < 0.5
    strength = np.asarray(method_strength)
    rater_effect = rng.normal(0, 0.5, n_raters)[rater - 100]
    outcomes = []
    for _ in range(3):
        a = strength[[specs[c].method_a for c in comparison]]
        b = strength[[specs[c].method_b for c in comparison]]
        logit = a - b + rater_effect + left_bias * np.where(left, 1, -1)
        a_wins = rng.random(n) < 1 / (1 + np.exp(-logit))
        outcomes.append(np.where(rng.random(n) < 0.2, 0, np.where(a_wins, 1, -1)))
    tile = lambda values: np.tile(values, 3)  # noqa: E731
    table = AnswerTable(
        comparison=tile([specs[c].id for c in comparison]),
        question=np.repeat(np.arange(3), n),
        rater=tile(rater),
        subject=tile(subject),
        prompt=tile(prompt),
        pair=tile(np.arange(n)),
        outcome=np.concatenate(outcomes),
        left_is_a=tile(left),
        time_ms=np.full(3 * n, 4000.0),
        is_gold=np.zeros(3 * n, bool),
        is_attention=np.zeros(3 * n, bool),
        check_passed=np.zeros(3 * n, bool),
    )
    return table, specs


def quality_table():
    """Rater 1 careful; rater 2 always clicks left and fast; rater 3 fails gold and attention checks."""
    names = (
        "comparison",
        "question",
        "rater",
        "subject",
        "prompt",
        "pair",
        "outcome",
        "left_is_a",
        "time_ms",
        "is_gold",
        "is_attention",
        "check_passed",
    )
    columns = {name: [] for name in names}
    rng = np.random.default_rng(0)
    pair = 0
    for rater, time_ms in ((1, 5000.0), (2, 600.0), (3, 4000.0)):
        for k in range(30):
            left_is_a = bool(rng.random() < 0.5)
            if rater == 2:
                outcome = 1 if left_is_a else -1
            else:
                outcome = int(rng.choice([1, -1, 0]))
            gold, attention = k < 5, 5 <= k < 8
            passed = (rater != 3) if (gold or attention) else False
            for question in range(3):
                values = (0, question, rater, k % 4, k % 10, pair, outcome, left_is_a, time_ms, gold, attention, passed)
                for name, value in zip(names, values, strict=True):
                    columns[name].append(value)
            pair += 1
    return AnswerTable.from_lists(**columns)
