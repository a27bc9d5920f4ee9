"""The whole analysis: settings, one procedure for interval, p-value and mark, multiplicity, degenerate cells."""

import json

import numpy as np
import pytest

from studyapp import stats
from studyapp.stats import AnalysisSettings, AnswerTable, ComparisonSpec, ExclusionRules
from tests.stats.builders import make_table, quality_table, simulated_study

SETTINGS = [
    AnalysisSettings(),
    AnalysisSettings(multiplicity="bonferroni"),
    AnalysisSettings(random_factors=("rater", "prompt")),
    AnalysisSettings(procedure="bootstrap", n_resamples=500),
]


def test_analyse_echoes_settings_and_returns_every_cell():
    table, specs = simulated_study(seed=3)
    settings = AnalysisSettings(seed=42, ties="davidson")
    result = stats.analyse(table, specs, settings)
    assert result.settings is settings and result.settings.as_dict()["seed"] == 42
    assert [(row.comparison, row.question) for row in result.rows] == [(c, q) for c in (10, 11, 12) for q in (0, 1, 2)]
    row = result.row(12, 2).as_dict()
    assert row["n"] == row["wins"] + row["ties"] + row["losses"]
    assert row["ci_low"] <= row["win_rate"] <= row["ci_high"]
    assert row["tie_rate_ci_low"] <= row["tie_rate"] <= row["tie_rate_ci_high"]
    assert set(result.bradley_terry) == {0, 1, 2} and set(result.agreement) == {0, 1, 2}
    assert result.bradley_terry[1].ties == "davidson"
    assert result.rows[0].estimate.seed == 42 and result.n_tests == 9
    exported = result.export_rows()
    assert len(exported) == 9 and exported[0]["setting_seed"] == 42 and exported[0]["excluded_raters"] == 0
    assert exported[0]["setting_random_factors"] == "rater+subject+prompt"
    round_trip = json.loads(json.dumps(exported))
    assert round_trip[4]["win_rate"] == pytest.approx(result.rows[4].estimate.win_rate)


def test_analysis_settings_refuse_bad_options_with_a_message():
    with pytest.raises(ValueError, match="procedure: expected one of 'crossed', 'bootstrap', got 'wald'"):
        AnalysisSettings(procedure="wald")
    with pytest.raises(ValueError, match=r"n_resamples: expected 1 to 100000 .* got 0"):
        AnalysisSettings(n_resamples=0)
    with pytest.raises(ValueError, match="multiplicity: expected one of 'holm', 'bonferroni'"):
        AnalysisSettings(multiplicity="none")
    with pytest.raises(ValueError, match="random_factors: expected distinct names"):
        AnalysisSettings(random_factors=("rater", "rater"))
    assert AnalysisSettings(random_factors=["prompt", "rater"]).random_factors == ("rater", "prompt")


@pytest.mark.parametrize("chosen", SETTINGS, ids=lambda s: f"{s.procedure}-{s.multiplicity}-{len(s.random_factors)}")
def test_a_cell_is_marked_exactly_when_its_adjusted_interval_excludes_one_half(chosen):
    table, specs = simulated_study(seed=9, method_strength=(0.0, 0.2, 1.6), n_subjects=12)
    result = stats.analyse(table, specs, chosen)
    marks = [bool(row.mark) for row in result.rows]
    assert 0 < sum(marks) < len(marks)  # some marks, not all: the check can fail either way
    for row in result.rows:
        excludes = row.adjusted_ci.low > 0.5 or row.adjusted_ci.high < 0.5
        assert bool(row.mark) == excludes == (row.adjusted_pvalue < chosen.alpha)
        marginal = row.estimate.win_rate_ci
        assert (marginal.low > 0.5 or marginal.high < 0.5) == (row.pvalue < 1 - chosen.confidence_level)
        assert row.adjusted_ci.low <= marginal.low and marginal.high <= row.adjusted_ci.high


def test_holm_adjusted_intervals_use_each_tests_holm_level_and_bonferroni_the_same_level():
    table, specs = simulated_study(seed=9, method_strength=(0.0, 0.2, 1.6), n_subjects=12)
    holm = stats.analyse(table, specs)
    levels = [row.adjusted_level for row in holm.rows]
    assert levels == pytest.approx(1 - stats.holm_levels([row.pvalue for row in holm.rows], 0.05))
    bonferroni = stats.analyse(table, specs, AnalysisSettings(multiplicity="bonferroni"))
    assert {round(row.adjusted_level, 12) for row in bonferroni.rows} == {round(1 - 0.05 / 9, 12)}


def test_holm_family_covers_declared_comparisons_only():
    table, specs = simulated_study(seed=4)
    specs[2] = ComparisonSpec(12, 2, 1, "C vs B (exploratory)", in_family=False)
    result = stats.analyse(table, specs)
    family = [row for row in result.rows if row.in_family]
    assert len(family) == 6 and result.n_tests == 6
    assert np.allclose([row.adjusted_pvalue for row in family], stats.holm([row.pvalue for row in family]))
    outside = [row for row in result.rows if not row.in_family]
    assert all(np.isnan(row.adjusted_pvalue) and row.mark == "" and np.isnan(row.adjusted_ci.low) for row in outside)


def test_a_cell_too_small_to_test_says_so_and_still_counts_in_the_holm_family():
    table, specs = simulated_study(seed=4, method_strength=(0.0, 1.5, 3.0))
    # comparison 10 keeps answers from two subjects only
    keep = (table.comparison != 10) | np.isin(table.subject, np.unique(table.subject)[:2])
    result = stats.analyse(table.select(keep), specs)
    row = result.row(10, 0)
    assert not row.estimate.testable and row.mark == "" and np.isnan(row.pvalue)
    assert row.note == "not tested: too few subjects to test: 2 with a decided answer, 3 needed"
    assert row.estimate.interval_method == "wilson"
    tested = [r for r in result.rows if r.estimate.testable]
    expected = stats.holm([r.pvalue for r in tested] + [1.0] * 3)[: len(tested)]
    assert [r.adjusted_pvalue for r in tested] == pytest.approx(expected)


def test_the_legend_names_the_procedure_used_and_the_fixed_factors():
    table, specs = simulated_study(seed=1)
    default = stats.analyse(table, specs).procedure
    assert "crossed random-factor" in default and "random factors: raters, subjects, prompts" in default
    assert "Holm over 9 tests" in default
    fixed = stats.analyse(table, specs, AnalysisSettings(random_factors=("rater", "prompt"))).procedure
    assert "fixed (their levels are the population): subjects" in fixed
    boot = stats.analyse(table, specs, AnalysisSettings(procedure="bootstrap", multiplicity="bonferroni")).procedure
    assert "pigeonhole bootstrap" in boot and "Bonferroni over 9 tests" in boot and "two-way" not in boot


def test_bootstrap_resamples_are_raised_until_p_can_fall_below_alpha_over_m_and_the_floor_is_flagged():
    table, specs = simulated_study(seed=9, method_strength=(0.0, 0.0, 3.0))
    result = stats.analyse(table, specs, AnalysisSettings(procedure="bootstrap", n_resamples=50))
    assert result.n_resamples == 360  # 2 / (B + 1) < 0.05 / 9
    assert 2 / (result.n_resamples + 1) < 0.05 / 9
    assert "raised from 50 to 360" in result.warnings[0]
    assert "'**' and '***' cannot appear" in result.warnings[1]
    strong = result.row(11, 0)
    assert strong.pvalue_is_floor and strong.mark == "*"
    assert not stats.analyse(table, specs).row(11, 0).pvalue_is_floor  # analytic p: no floor
    assert stats.analyse(table, specs).row(11, 0).mark == "***"


def test_no_answers_give_undefined_rates_no_test_and_no_mark():
    result = stats.analyse(AnswerTable.empty(), [ComparisonSpec(0, 1, 2)], AnalysisSettings(questions=(0,)))
    row = result.row(0, 0)
    assert row.estimate.n == 0 and np.isnan(row.estimate.win_rate) and np.isnan(row.estimate.win_rate_ci.low)
    assert np.isnan(row.pvalue) and row.mark == "" and row.note == "not tested: no decided answers"
    assert np.isfinite(result.bradley_terry[0].scores).all()
    assert result.rater_quality.raters.size == 0


def test_results_are_reported_with_and_without_exclusions():
    table = quality_table()
    specs = [ComparisonSpec(0, 1, 2)]
    result = stats.analyse_with_and_without_exclusions(
        table,
        specs,
        AnalysisSettings(n_resamples=100),
        rules=ExclusionRules(left_share_alpha=0.001),
        excluded_raters=[3],
    )
    assert result.excluded_raters == (2, 3)
    assert result.all_raters.excluded_raters == () and result.with_exclusions.excluded_raters == (2, 3)
    assert result.with_exclusions.n_excluded_answers == 180 and result.with_exclusions.n_answers == 90
    assert result.all_raters.row(0, 0).estimate.n == 66  # 22 non-check pairs per rater
    assert result.with_exclusions.row(0, 0).estimate.n == 22
    assert result.with_exclusions.rater_quality.raters.tolist() == [1]
    assert not result.with_exclusions.row(0, 0).estimate.testable  # one rater left


def test_check_rows_never_count_towards_win_rates():
    assert stats.win_rate(quality_table(), 0, 1).n == 3 * 22


def test_one_rater_cannot_be_marked_however_lopsided():
    table = make_table([1] * 40, raters=[7] * 40, subjects=[i % 5 for i in range(40)], prompts=list(range(40)))
    row = stats.analyse(table, [ComparisonSpec(0, 1, 2)]).row(0, 0)
    assert row.mark == "" and row.note.startswith("not tested: too few raters")
    assert row.estimate.win_rate_ci.low < 0.5  # Wilson on one effective cluster
