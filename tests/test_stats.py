"""Known values, degenerate cases and invariants of studyapp.stats (no web, no database)."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from studyapp import stats
from studyapp.stats import AnalysisSettings, AnswerTable, ComparisonSpec, ExclusionRules

ROOT = Path(__file__).resolve().parents[1]


def make_table(outcomes, raters=None, items=None, comparison=0, question=0, left_is_a=None, **extra):
    n = len(outcomes)
    return AnswerTable.from_lists(
        comparison=[comparison] * n,
        question=[question] * n,
        rater=list(range(n)) if raters is None else raters,
        item=list(range(n)) if items is None else items,
        outcome=outcomes,
        left_is_a=left_is_a,
        **extra,
    )


def simulated_study(seed=0, n_raters=30, n_items=20, per_rater=40, method_strength=(0.0, 0.6, 1.2), left_bias=0.0):
    """Three methods, all three comparisons, three questions; raters and prompts have effects."""
    rng = np.random.default_rng(seed)
    specs = [ComparisonSpec(10, 1, 0, "B vs A"), ComparisonSpec(11, 2, 0, "C vs A"), ComparisonSpec(12, 2, 1, "C vs B")]
    n = n_raters * per_rater
    rater = np.repeat(np.arange(n_raters), per_rater) + 100
    item = rng.integers(0, n_items, n) + 500
    comparison = rng.integers(0, 3, n)
    left = rng.random(n) < 0.5
    strength = np.asarray(method_strength)
    rater_effect = rng.normal(0, 0.5, n_raters)[rater - 100]
    columns = {name: [] for name in AnswerTable.COLUMNS}
    for question in range(3):
        a = strength[[specs[c].method_a for c in comparison]]
        b = strength[[specs[c].method_b for c in comparison]]
        logit = a - b + rater_effect + left_bias * np.where(left, 1, -1)
        a_wins = rng.random(n) < 1 / (1 + np.exp(-logit))
        outcome = np.where(rng.random(n) < 0.2, 0, np.where(a_wins, 1, -1))
        for name, values in (
            ("comparison", np.array([specs[c].id for c in comparison])), ("question", np.full(n, question)),
            ("rater", rater), ("item", item), ("pair", np.arange(n)), ("outcome", outcome), ("left_is_a", left),
            ("time_ms", np.full(n, 4000.0)), ("is_gold", np.zeros(n, bool)), ("is_attention", np.zeros(n, bool)),
            ("check_passed", np.zeros(n, bool)),
        ):  # fmt: skip
            columns[name].append(values)
    table = AnswerTable(**{name: np.concatenate(parts) for name, parts in columns.items()})
    return table, specs


# ---------------------------------------------------------------- closed forms against hand values


def test_wilson_interval_matches_hand_computation_for_8_of_10():
    # centre = (0.8 + z²/20) / (1 + z²/10), half = z/(1 + z²/10) sqrt(0.016 + z²/400), z = 1.959964
    low, high = stats.wilson_interval(8, 10)
    assert low == pytest.approx(0.4901625, abs=1e-6)
    assert high == pytest.approx(0.9433178, abs=1e-6)


@pytest.mark.parametrize("k, n", [(0, 5), (1, 7), (25, 50), (49, 50), (300, 1000)])
def test_wilson_interval_agrees_with_scipy_binomtest(k, n):
    expected = sps.binomtest(k, n).proportion_ci(confidence_level=0.9, method="wilson")
    low, high = stats.wilson_interval(k, n, confidence_level=0.9)
    assert (low, high) == pytest.approx((expected.low, expected.high), abs=1e-12)


def test_wilson_interval_is_undefined_without_trials_and_rejects_bad_levels():
    assert all(np.isnan(stats.wilson_interval(0, 0)))
    with pytest.raises(ValueError, match=r"confidence_level: expected a number in \(0, 1\), got 1.5"):
        stats.wilson_interval(1, 2, confidence_level=1.5)


def test_sign_test_p_values_are_exact_binomial_tails():
    assert stats.sign_test(8, 2).pvalue == pytest.approx(112 / 1024)  # 2 (C(10,8)+C(10,9)+C(10,10)) / 2^10
    assert stats.sign_test(10, 0).pvalue == pytest.approx(2 / 1024)
    assert stats.sign_test(5, 5).pvalue == 1.0
    assert stats.sign_test(0, 0, ties=7).pvalue == 1.0
    result = stats.sign_test(8, 2, ties=3)
    assert (result.wins, result.losses, result.ties, result.statistic) == (8, 2, 3, 0.8)
    assert result.proportion_ci() == pytest.approx(stats.wilson_interval(8, 10))


@pytest.mark.parametrize("wins, losses", [(3, 11), (40, 25), (117, 83)])
def test_sign_test_agrees_with_scipy_binomtest(wins, losses):
    assert stats.sign_test(wins, losses).pvalue == pytest.approx(sps.binomtest(wins, wins + losses).pvalue)


def test_holm_adjusts_by_hand():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 -> max(0.06, 0.04) = 0.06
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])
    adjusted = stats.holm([0.02, np.nan, 0.01])
    assert np.isnan(adjusted[1]) and adjusted[[0, 2]] == pytest.approx([0.02, 0.02])
    assert stats.holm([]).size == 0


def test_significance_marks_follow_adjusted_p():
    assert [stats.significance_mark(p) for p in (0.2, 0.04, 0.009, 0.0009, np.nan)] == ["", "*", "**", "***", ""]


def test_sample_size_planner_reproduces_the_spec_table():
    plain = stats.plan_sample_size(0.6)
    assert plain.n_decisive == 194
    clustered = stats.plan_sample_size(0.6, tie_rate=0.25, design_effect=2.0)
    assert clustered.n_total == 517
    holm15 = stats.plan_sample_size(0.6, n_comparisons=15, tie_rate=0.25, design_effect=2.0)
    assert holm15.alpha_per_test == pytest.approx(0.05 / 15)
    assert 353 <= holm15.n_decisive <= 354 and 940 <= holm15.n_total <= 943
    assert stats.plan_sample_size(0.4).n_decisive == 194  # symmetric around 1/2


def test_sample_size_planner_rejects_impossible_targets():
    with pytest.raises(ValueError, match="win_rate: expected a number in \\(0, 1\\) other than 0.5, got 0.5"):
        stats.plan_sample_size(0.5)
    with pytest.raises(ValueError, match="design_effect: expected a number >= 1"):
        stats.plan_sample_size(0.6, design_effect=0.5)


# ---------------------------------------------------------------- agreement against the literature


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


def test_fleiss_kappa_reproduces_the_textbook_example():
    # the worked example of the Wikipedia article "Fleiss' kappa": 10 subjects, 14 raters, 5 categories
    counts = [
        [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
    ]  # fmt: skip
    assert stats.fleiss_kappa(counts) == pytest.approx(0.210, abs=5e-4)


def test_agreement_on_overlap_pairs_uses_only_pairs_with_several_raters():
    # pairs 0-2 rated by three raters, pair 3 by one rater (not pairable)
    table = AnswerTable.from_lists(
        comparison=[0] * 10, question=[0] * 10, rater=[1, 2, 3, 1, 2, 3, 1, 2, 3, 1], item=[0] * 10,
        pair=[0, 0, 0, 1, 1, 1, 2, 2, 2, 3], outcome=[1, 1, 1, -1, -1, 0, 1, 0, 1, -1],
    )  # fmt: skip
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


# ---------------------------------------------------------------- the answer table


def test_answer_table_rejects_outcomes_outside_method_space():
    with pytest.raises(ValueError, match=r"outcome: expected \+1 \(A won\), 0 .* got 2 at row 1"):
        make_table([1, 2, 0])


def test_answer_table_rejects_columns_of_unequal_length():
    with pytest.raises(ValueError, match="expected columns of equal length"):
        AnswerTable.from_lists(comparison=[0, 0], question=[0], rater=[1, 2], item=[1, 2], outcome=[1, -1])


def test_answer_table_from_rows_reads_values_list_tuples():
    rows = [(7, 0, 3, 9, 1), (7, 0, 4, 9, -1)]
    table = AnswerTable.from_rows(rows, columns=("comparison", "question", "rater", "item", "outcome"))
    assert table.rater.tolist() == [3, 4] and table.outcome.tolist() == [1, -1]
    assert table.left_is_a.all() and np.isnan(table.time_ms).all()
    with pytest.raises(ValueError, match="unknown \\['screen'\\]"):
        AnswerTable.from_rows(rows, columns=("comparison", "question", "rater", "item", "screen"))


def test_answer_table_columns_are_read_only():
    table = make_table([1, -1])
    with pytest.raises(ValueError):
        table.outcome[0] = 0


# ---------------------------------------------------------------- win rates


def test_win_rate_counts_and_point_estimates_come_from_the_full_data():
    table = make_table([1] * 6 + [-1] * 2 + [0] * 2, raters=[1, 1, 2, 2, 3, 3, 4, 4, 5, 5])
    result = stats.win_rate(table, 0, 0, n_resamples=300, seed=3)
    assert (result.wins, result.ties, result.losses) == (6, 2, 2)
    assert result.win_rate == 0.75 and result.tie_rate == 0.2 and result.tie_half_score == 0.7
    assert result.wilson_ci() == pytest.approx(stats.wilson_interval(6, 8))
    assert result.n_raters == 5 and result.n_items == 10
    assert (result.cluster, result.n_resamples, result.seed) == ("two-way", 300, 3)


def test_win_rate_bootstrap_is_reproducible_by_seed():
    table, _ = simulated_study(seed=5)
    first = stats.win_rate(table, 10, 0, n_resamples=200, seed=11)
    again = stats.win_rate(table, 10, 0, n_resamples=200, seed=11)
    other = stats.win_rate(table, 10, 0, n_resamples=200, seed=12)
    assert first == again
    assert first.win_rate_ci != other.win_rate_ci
    assert first.win_rate == other.win_rate


def test_vectorised_replicates_equal_explicit_reweighting_of_every_answer():
    table, specs = simulated_study(seed=2, n_raters=12, n_items=7, per_rater=15)
    cells = stats._cells(table, specs, None)
    n_resamples = 25
    replicates = stats._replicate_counts(cells, n_resamples, np.random.default_rng(4), "two-way", "multinomial")
    rng = np.random.default_rng(4)  # same draws, same order: raters, then prompts
    rater_w = stats._cluster_weights(rng, cells.rater_labels.size, n_resamples, "multinomial")
    item_w = stats._cluster_weights(rng, cells.item_labels.size, n_resamples, "multinomial")
    for b in range(n_resamples):
        row_weight = rater_w[cells.rater, b] * item_w[cells.item, b]
        expected = np.bincount(cells.column, weights=row_weight, minlength=cells.n_cells * 6)
        assert replicates[b].ravel() == pytest.approx(expected)


def test_rater_weights_are_resamples_of_the_raters():
    weights = stats._cluster_weights(np.random.default_rng(0), 40, 100, "multinomial")
    assert weights.shape == (40, 100) and (weights.sum(axis=0) == 40).all()


def test_cluster_bootstrap_is_wider_than_wilson_when_raters_disagree():
    # ten raters who each always pick the same side: answers within a rater are copies
    raters = np.repeat(np.arange(10), 20)
    outcome = np.where(raters < 6, 1, -1)
    table = make_table(outcome.tolist(), raters=raters.tolist(), items=(np.arange(200) % 20).tolist())
    result = stats.win_rate(table, 0, 0, n_resamples=500, seed=0)
    wilson = result.wilson_ci()
    assert result.win_rate == 0.6
    assert (result.win_rate_ci.high - result.win_rate_ci.low) > 2.5 * (wilson.high - wilson.low)
    assert result.design_effect > 5


def test_no_answers_give_undefined_rates_and_p_value_one():
    settings = AnalysisSettings(n_resamples=50, questions=(0,))
    result = stats.analyse(AnswerTable.empty(), [ComparisonSpec(0, 1, 2)], settings)
    row = result.row(0, 0)
    assert row.estimate.n == 0 and np.isnan(row.estimate.win_rate) and np.isnan(row.estimate.win_rate_ci.low)
    assert row.pvalue == 1.0 and row.sign_test_pvalue == 1.0 and row.mark == ""
    assert np.isfinite(result.bradley_terry[0].scores).all()
    assert result.rater_quality.raters.size == 0


def test_all_ties_give_tie_rate_one_and_an_undefined_win_rate():
    table = make_table([0] * 12, raters=[1, 2, 3] * 4)
    result = stats.win_rate(table, 0, 0, n_resamples=100)
    assert np.isnan(result.win_rate) and result.undefined_resamples == 100
    assert result.tie_rate == 1.0 and result.tie_rate_ci == (1.0, 1.0)
    assert result.tie_half_score == 0.5


def test_one_rater_resamples_prompts_only_and_the_sign_flip_test_cannot_reject():
    table = make_table([1] * 9 + [-1], raters=[7] * 10)
    analysis = stats.analyse(table, [ComparisonSpec(0, 1, 2)], AnalysisSettings(n_resamples=200))
    row = analysis.row(0, 0)
    assert row.estimate.n_raters == 1
    assert row.estimate.win_rate_ci.low < 0.9 < row.estimate.win_rate_ci.high
    assert row.pvalue == 1.0  # one rater: both sign patterns are as extreme
    assert row.sign_test_pvalue == pytest.approx(stats.sign_test(9, 1).pvalue)


# ---------------------------------------------------------------- tests of "no preference"


def test_sign_flip_test_enumerates_small_rater_sets_exactly():
    result = stats.sign_flip_test([1, 2, 3], [1, 1, 1])
    assert result.exact and result.pvalue == pytest.approx(2 / 8)
    assert stats.sign_flip_test([1, 1, 2, 2], [1, -1, 1, -1]).pvalue == 1.0


def test_sign_flip_test_weights_raters_not_answers():
    # one prolific rater always prefers A; nine raters are split evenly: no clustered evidence
    raters = [0] * 200 + [r for r in range(1, 10) for _ in range(2)]
    outcome = [1] * 200 + [1, -1] * 9
    clustered = stats.sign_flip_test(raters, outcome, n_resamples=4000, seed=0)
    assert clustered.pvalue > 0.5
    assert stats.sign_test(209, 9).pvalue < 1e-40


def test_bootstrap_test_and_sign_flip_test_are_selectable_and_agree_on_a_clear_effect():
    table, specs = simulated_study(seed=9, method_strength=(0.0, 0.0, 2.0))
    for test in ("sign_flip", "bootstrap", "sign"):
        result = stats.analyse(table, specs, AnalysisSettings(n_resamples=400, test=test))
        # C is far stronger than A (9 tests; randomisation p-values are at least 1 / 401)
        assert result.row(11, 0).adjusted_pvalue < 0.05 and result.row(11, 0).mark
        assert result.row(10, 0).adjusted_pvalue > 0.05  # B equals A


def test_holm_family_covers_declared_comparisons_only():
    table, specs = simulated_study(seed=4)
    specs[2] = ComparisonSpec(12, 2, 1, "C vs B (exploratory)", in_family=False)
    result = stats.analyse(table, specs, AnalysisSettings(n_resamples=200))
    family = [row for row in result.rows if row.in_family]
    assert len(family) == 6
    assert np.allclose([row.adjusted_pvalue for row in family], stats.holm([row.pvalue for row in family]))
    assert all(np.isnan(row.adjusted_pvalue) and row.mark == "" for row in result.rows if not row.in_family)


# ---------------------------------------------------------------- Bradley-Terry


def test_bradley_terry_half_ties_matches_the_closed_form_for_two_methods():
    # A beats B 30 times, loses 10, ties 10, sides balanced: log-odds = log((30 + 5) / (10 + 5))
    outcome = [1] * 30 + [-1] * 10 + [0] * 10
    table = make_table(outcome, raters=list(range(50)), left_is_a=[i % 2 == 0 for i in range(50)])
    result = stats.bradley_terry(table, [ComparisonSpec(0, 1, 2)], ridge=1e-8, n_resamples=0)[0]
    a, b = result.scores
    assert a - b == pytest.approx(np.log(35 / 15), abs=1e-6)
    assert a + b == pytest.approx(0, abs=1e-9) and result.converged
    assert result.ranks.tolist() == [1, 2]  # no resamples: ranked by the point estimates


def test_bradley_terry_recovers_order_and_left_advantage():
    table, specs = simulated_study(seed=1, n_raters=60, per_rater=60, left_bias=0.4)
    for ties in ("half", "davidson"):
        result = stats.bradley_terry(table, specs, ties=ties, n_resamples=200, seed=0)[0]
        assert result.methods == (1, 0, 2)
        ranking = [row["method"] for row in result.ranking()]
        assert ranking == [2, 1, 0]
        assert result.left_advantage_ci.low > 0.15
        assert result.failed_resamples == 0
        assert (result.scores_ci_low <= result.scores).all() and (result.scores <= result.scores_ci_high).all()
    assert result.tie_log_nu is not None and np.isfinite(result.tie_log_nu)


def test_bradley_terry_stays_finite_when_a_method_always_wins():
    outcome = [1] * 40
    table = make_table(outcome, raters=[i % 8 for i in range(40)], left_is_a=[i % 2 == 0 for i in range(40)])
    for ties in ("half", "davidson"):
        result = stats.bradley_terry(table, [ComparisonSpec(0, 1, 2)], ties=ties, n_resamples=100)[0]
        assert np.isfinite(result.scores).all() and result.converged
        assert result.scores[0] > result.scores[1]
        assert np.isfinite(result.scores_ci_low).all() and np.isfinite(result.scores_ci_high).all()
        assert result.ranks.tolist() == [1, 2]
        assert result.dominance[0, 1] == 1.0


def test_bradley_terry_rejects_unknown_tie_handling():
    with pytest.raises(ValueError, match="ties: expected one of 'half', 'davidson', got 'elo'"):
        stats.bradley_terry(make_table([1]), [ComparisonSpec(0, 1, 2)], ties="elo")


# ---------------------------------------------------------------- humans versus metrics


def test_metric_agreement_rejects_misaligned_inputs():
    with pytest.raises(ValueError, match="expected equal lengths, got 2, 1, 2"):
        stats.metric_agreement([1, -1], [0.1], [0.2, 0.3])


def test_metric_agreement_counts_decisive_pairs_where_the_metric_picks_the_same_winner():
    outcome = [1, 1, -1, -1, 0, 1]
    metric_a = [0.30, 0.20, 0.10, 0.40, 0.9, 0.25]
    metric_b = [0.10, 0.30, 0.20, 0.10, 0.1, 0.25]
    result = stats.metric_agreement(outcome, metric_a, metric_b)
    assert (result.n, result.n_agree, result.metric_ties) == (4, 2, 1)
    assert result.share == 0.5
    assert result.share_ci == pytest.approx(stats.wilson_interval(2, 4))


# ---------------------------------------------------------------- rater quality and exclusions


def quality_table():
    """Rater 1 careful; rater 2 always clicks left and fast; rater 3 fails gold and attention checks."""
    columns = {name: [] for name in ("comparison", "question", "rater", "item", "pair", "outcome", "left_is_a",
                                     "time_ms", "is_gold", "is_attention", "check_passed")}  # fmt: skip
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
                values = (0, question, rater, k % 10, pair, outcome, left_is_a, time_ms, gold, attention, passed)
                for name, value in zip(columns, values):
                    columns[name].append(value)
            pair += 1
    return AnswerTable.from_lists(**columns)


def test_rater_quality_reports_gold_attention_time_and_side_per_rater():
    quality = stats.rater_quality(quality_table())
    assert quality.raters.tolist() == [1, 2, 3]
    assert quality.n_pairs.tolist() == [30, 30, 30]
    assert quality.gold_answers.tolist() == [15, 15, 15]  # five gold pairs x three questions
    assert quality.gold_accuracy.tolist() == [1.0, 1.0, 0.0]
    assert quality.attention_checks.tolist() == [3, 3, 3] and quality.attention_failures.tolist() == [0, 0, 3]
    assert quality.median_time_ms.tolist() == [5000.0, 600.0, 4000.0]
    assert quality.left_pairs[1] == quality.decisive_pairs[1] == 30  # judged per pair, not per question
    assert quality.left_share[1] == 1.0 and quality.left_pvalue[1] == pytest.approx(2 / 2**30)
    assert quality.left_pvalue[0] > 0.01
    row = quality.rows()[1]
    assert row["raters"] == 2 and row["left_share"] == 1.0


def test_exclusion_rules_return_each_excluded_rater_with_reasons():
    quality = stats.rater_quality(quality_table())
    rules = ExclusionRules(min_gold_accuracy=0.8, max_attention_failures=1, left_share_alpha=0.001,
                           min_median_time_fraction=0.3)  # fmt: skip
    result = stats.apply_exclusion_rules(quality, rules)
    assert result.excluded_raters == (2, 3)
    assert [r.split(":")[0] for r in result.reasons[2]] == ["left_share_alpha", "min_median_time_fraction"]
    assert [r.split(":")[0] for r in result.reasons[3]] == ["min_gold_accuracy", "max_attention_failures"]
    assert "0.000 < 0.8" in result.reasons[3][0]
    assert result.counts_by_rule()["min_gold_accuracy"] == 1
    assert stats.apply_exclusion_rules(quality, ExclusionRules()).excluded_raters == ()


def test_results_are_reported_with_and_without_exclusions():
    table = quality_table()
    specs = [ComparisonSpec(0, 1, 2)]
    result = stats.analyse_with_and_without_exclusions(
        table, specs, AnalysisSettings(n_resamples=100), rules=ExclusionRules(left_share_alpha=0.001),
        excluded_raters=[3],
    )  # fmt: skip
    assert result.excluded_raters == (2, 3)
    assert result.all_raters.excluded_raters == () and result.with_exclusions.excluded_raters == (2, 3)
    assert result.with_exclusions.n_excluded_answers == 180 and result.with_exclusions.n_answers == 90
    assert result.all_raters.row(0, 0).estimate.n == 66  # 22 non-check pairs per rater
    assert result.with_exclusions.row(0, 0).estimate.n == 22
    assert result.with_exclusions.rater_quality.raters.tolist() == [1]


def test_check_rows_never_count_towards_win_rates():
    table = quality_table()
    estimate = stats.win_rate(table, 0, 1, n_resamples=10)
    assert estimate.n == 3 * 22


# ---------------------------------------------------------------- the whole analysis


def test_analyse_echoes_settings_and_returns_every_cell():
    table, specs = simulated_study(seed=3)
    settings = AnalysisSettings(n_resamples=300, seed=42, ties="davidson")
    result = stats.analyse(table, specs, settings)
    assert result.settings is settings and result.settings.as_dict()["seed"] == 42
    assert [(row.comparison, row.question) for row in result.rows] == [(c, q) for c in (10, 11, 12) for q in (0, 1, 2)]
    row = result.row(12, 2).as_dict()
    assert row["n"] == row["wins"] + row["ties"] + row["losses"]
    assert row["ci_low"] <= row["win_rate"] <= row["ci_high"]
    assert row["tie_rate_ci_low"] <= row["tie_rate"] <= row["tie_rate_ci_high"]
    assert set(result.bradley_terry) == {0, 1, 2} and set(result.agreement) == {0, 1, 2}
    assert result.bradley_terry[1].ties == "davidson"
    assert result.rows[0].estimate.n_resamples == 300 and result.rows[0].estimate.seed == 42
    exported = result.export_rows()
    assert len(exported) == 9 and exported[0]["setting_seed"] == 42 and exported[0]["excluded_raters"] == 0
    round_trip = json.loads(json.dumps(exported))
    assert round_trip[4]["win_rate"] == pytest.approx(result.rows[4].estimate.win_rate)


def test_analysis_settings_reject_unknown_options():
    with pytest.raises(ValueError, match="test: expected one of 'sign_flip', 'bootstrap', 'sign', got 'wald'"):
        AnalysisSettings(test="wald")
    with pytest.raises(ValueError, match="cluster: expected one of"):
        AnalysisSettings(cluster="pairs")


@pytest.mark.parametrize("cluster", ["two-way", "rater", "item", "none"])
def test_every_cluster_option_brackets_the_point_estimate(cluster):
    table, _ = simulated_study(seed=6)
    result = stats.win_rate(table, 11, 1, n_resamples=300, cluster=cluster, weights="poisson")
    assert result.win_rate_ci.low < result.win_rate < result.win_rate_ci.high


# ---------------------------------------------------------------- packaging


def test_stats_module_imports_nothing_from_django():
    tree = ast.parse((ROOT / "studyapp" / "stats.py").read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not {name for name in imported if name.split(".")[0] in {"django", "rest_framework", "studyapp"}}


def test_stats_run_without_django_settings():
    code = (
        "from studyapp import stats; "
        "t = stats.AnswerTable.from_lists(comparison=[0]*4, question=[0]*4, rater=[1,2,3,4], item=[1,1,2,2], "
        "outcome=[1,1,-1,0]); "
        "r = stats.analyse(t, [stats.ComparisonSpec(0, 1, 2)], stats.AnalysisSettings(n_resamples=20)); "
        "print(r.rows[0].estimate.wins)"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["DJANGO_SETTINGS_MODULE"] = "settings_that_do_not_exist"
    env["PYTHONPATH"] = str(ROOT)
    completed = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "2"


def test_iid_bootstrap_agrees_with_wilson_on_independent_answers():
    rng = np.random.default_rng(8)
    outcome = np.where(rng.random(4000) < 0.15, 0, np.where(rng.random(4000) < 0.56, 1, -1))
    table = make_table(outcome.tolist())
    result = stats.win_rate(table, 0, 0, n_resamples=2000, cluster="none", seed=1)
    wilson = result.wilson_ci()
    assert result.win_rate_ci.high - result.win_rate_ci.low == pytest.approx(wilson.high - wilson.low, rel=0.1)
    assert result.design_effect == pytest.approx(1.0, abs=0.15)


@pytest.mark.parametrize("ties", ["half", "davidson"])
def test_bradley_terry_newton_fit_agrees_with_scipy_on_the_same_objective(ties):
    from scipy import optimize
    from scipy.special import log_expit, logsumexp

    table, specs = simulated_study(seed=12, n_raters=20, per_rater=30, left_bias=0.3)
    ridge = 0.01
    mask = table.question == 0
    method = {s.id: (s.method_a, s.method_b) for s in specs}
    index = {m: i for i, m in enumerate((1, 0, 2))}  # order of first appearance in specs
    a = np.array([index[method[c][0]] for c in table.comparison[mask]])
    b = np.array([index[method[c][1]] for c in table.comparison[mask]])
    left = np.where(table.left_is_a[mask], a, b)
    right = np.where(table.left_is_a[mask], b, a)
    outcome = table.outcome[mask]
    left_won = np.where(table.left_is_a[mask], outcome == 1, outcome == -1)
    right_won = (outcome != 0) & ~left_won

    def negative_objective(theta):
        beta, home = theta[:3], theta[3]
        eta_left, eta_right = beta[left] + home, beta[right]
        if ties == "half":
            score = np.where(outcome == 0, 0.5, left_won.astype(float))
            log_lik = score * log_expit(eta_left - eta_right) + (1 - score) * log_expit(eta_right - eta_left)
        else:
            eta_tie = theta[4] + (eta_left + eta_right) / 2
            etas = np.stack([eta_left, eta_right, eta_tie])
            chosen = np.where(left_won, eta_left, np.where(right_won, eta_right, eta_tie))
            log_lik = chosen - logsumexp(etas, axis=0)
        return -log_lik.sum() + ridge / 2 * theta @ theta

    n_params = 5 if ties == "davidson" else 4
    reference = optimize.minimize(negative_objective, np.zeros(n_params), method="BFGS", options={"gtol": 1e-8}).x
    result = stats.bradley_terry(table, specs, ties=ties, ridge=ridge, n_resamples=0, questions=[0])[0]
    assert result.scores == pytest.approx(reference[:3] - reference[:3].mean(), abs=1e-4)
    assert result.left_advantage == pytest.approx(reference[3], abs=1e-4)
    if ties == "davidson":
        assert result.tie_log_nu == pytest.approx(reference[4], abs=1e-4)
