"""Rater quality columns and exclusion rules."""

import pytest

from studyapp import stats
from studyapp.stats import ExclusionRules
from tests.stats.builders import quality_table


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
    rules = ExclusionRules(
        min_gold_accuracy=0.8, max_attention_failures=1, left_share_alpha=0.001, min_median_time_fraction=0.3
    )
    result = stats.apply_exclusion_rules(quality, rules)
    assert result.excluded_raters == (2, 3)
    assert [r.split(":")[0] for r in result.reasons[2]] == ["left_share_alpha", "min_median_time_fraction"]
    assert [r.split(":")[0] for r in result.reasons[3]] == ["min_gold_accuracy", "max_attention_failures"]
    assert "0.000 < 0.8" in result.reasons[3][0]
    assert result.counts_by_rule()["min_gold_accuracy"] == 1
    assert stats.apply_exclusion_rules(quality, ExclusionRules()).excluded_raters == ()
