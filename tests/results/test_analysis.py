"""studyapp.results: the answer table into the statistics, exclusions, metrics beside the table, snapshots."""

import json

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from studyapp.models import AnalysisSnapshot, Answer, MetricScore, Pair, Rater
from studyapp.results.analysis import SettingsError, analysis_settings, study_results
from studyapp.results.exclusions import RulesError, apply_study_rules
from studyapp.results.metrics import PairMetrics, human_metric_agreement, method_metric_summary
from studyapp.results.pseudonyms import pseudonym
from studyapp.results.report import results_json
from studyapp.results.snapshots import create_snapshot, snapshot_matches_current_data
from studyapp.results.table import answer_table
from studyapp.stats import FACTORS
from tests.results.factories import add_answers, answer, gold_pair, study_with_answers

pytestmark = pytest.mark.django_db

FAST = {"n_resamples": 200}


def _regular_pair(study):
    return study.pairs.filter(kind=Pair.Kind.REGULAR).order_by("id").first()


def test_it_builds_one_row_per_question_in_method_space():
    study = study_with_answers(raters=0)
    rater = Rater.objects.create(study=study, source="open", external_id="solo")
    pair = _regular_pair(study)
    answer(rater, pair, "a", left_is_a=False, response_ms=1234, image="tie", overall="b").save()

    table = answer_table(study)

    assert table.question.tolist() == [0, 1, 2]
    assert table.outcome.tolist() == [1, 0, -1]
    assert table.left_is_a.tolist() == [False] * 3
    assert table.comparison.tolist() == [pair.comparison_id] * 3
    assert table.subject.tolist() == [pair.concept_id] * 3
    assert table.prompt.tolist() == [pair.prompt_id] * 3
    assert table.time_ms.tolist() == [1234.0] * 3
    assert not table.is_check.any()


def test_it_scores_only_the_questions_a_gold_pair_names():
    study = study_with_answers(raters=0)
    gold = gold_pair(study, {"text": "b"})
    right, wrong = (
        Rater.objects.create(study=study, source="open", external_id="right"),
        Rater.objects.create(study=study, source="open", external_id="tie"),
    )
    answer(right, gold, "a", text="b").save()
    answer(wrong, gold, "a", text="tie").save()  # can't decide on a gold pair is a miss

    table = answer_table(study)

    assert table.is_gold.sum() == 2 and len(table) == 2
    passed = dict(zip(table.rater.tolist(), table.check_passed.tolist(), strict=True))
    assert passed == {right.pk: True, wrong.pk: False}


def test_it_counts_wins_ties_and_losses_per_comparison_and_question():
    study = study_with_answers(raters=0, methods=2)
    pairs = list(study.pairs.filter(kind=Pair.Kind.REGULAR))
    raters = [Rater.objects.create(study=study, source="open", external_id=f"x{i}") for i in range(3)]
    Answer.objects.bulk_create(
        [answer(raters[0], p, "a") for p in pairs]
        + [answer(raters[1], p, "b") for p in pairs[:2]]
        + [answer(raters[2], p, "tie") for p in pairs[:3]]
    )

    found = study_results(study, FAST)

    row = found.primary.row(pairs[0].comparison_id, 0)
    assert (row.estimate.wins, row.estimate.ties, row.estimate.losses) == (len(pairs), 3, 2)
    assert row.estimate.win_rate == pytest.approx(len(pairs) / (len(pairs) + 2))
    assert found.n_answers == len(pairs) + 5 and found.n_raters == 3


def test_excluding_a_rater_by_hand_recomputes_only_the_reduced_analysis():
    study = study_with_answers(raters=4)
    before = study_results(study, FAST)
    rater = Rater.objects.filter(study=study).first()
    rater.excluded = True
    rater.save()

    after = study_results(study, FAST)

    assert before.excluded_raters == () and after.excluded_raters == (rater.pk,)
    comparison = before.comparisons[0].pk
    assert after.all_raters.row(comparison, 0).estimate.n == before.primary.row(comparison, 0).estimate.n
    assert after.primary.row(comparison, 0).estimate.n < before.primary.row(comparison, 0).estimate.n
    assert after.exclusion_reasons() == {rater.pk: ["excluded by hand"]}


def test_the_study_rules_exclude_raters_without_anyone_acting():
    study = study_with_answers(raters=3, exclusion_rules={"min_gold_accuracy": 0.5})
    gold = gold_pair(study, {"image": "a"})
    careless, careful = Rater.objects.filter(study=study).order_by("id")[:2]
    Answer.objects.bulk_create([answer(careless, gold, "b"), answer(careful, gold, "a")])

    found = study_results(study, FAST)

    assert found.excluded_raters == (careless.pk,)
    assert found.exclusion_reasons()[careless.pk] == ["min_gold_accuracy: 0.000 < 0.5"]
    assert found.primary.n_excluded_answers > 0


def test_apply_study_rules_marks_the_raters_with_their_reasons():
    study = study_with_answers(raters=2, exclusion_rules={"min_gold_accuracy": 0.5})
    gold = gold_pair(study, {"image": "a"})
    careless = Rater.objects.filter(study=study).first()
    answer(careless, gold, "b").save()

    flagged = apply_study_rules(study)

    careless.refresh_from_db()
    assert list(flagged) == [careless.pk]
    assert careless.excluded and careless.exclusion_reason.startswith("min_gold_accuracy")
    assert Rater.objects.filter(study=study, excluded=True).count() == 1


def test_it_refuses_malformed_exclusion_rules_naming_the_key():
    study = study_with_answers(raters=1, exclusion_rules={"min_gold_acuracy": 0.8})
    with pytest.raises(RulesError, match="unknown min_gold_acuracy; expected keys from"):
        study_results(study, FAST)


def test_it_refuses_malformed_settings_naming_the_setting():
    study = study_with_answers(raters=1)
    with pytest.raises(SettingsError, match="n_resamples: expected a number, got 'many'"):
        analysis_settings(study, {"n_resamples": "many"})
    with pytest.raises(SettingsError, match="procedure: expected one of 'crossed', 'bootstrap', got 't-test'"):
        analysis_settings(study, {"procedure": "t-test"})
    with pytest.raises(SettingsError, match=r"n_resamples: expected 1 to 20000 \(.*\), got 0"):
        analysis_settings(study, {"n_resamples": "0"})
    with pytest.raises(SettingsError, match="random_factors: expected distinct names from"):
        analysis_settings(study, {"random_factors": "rater,seed"})


@pytest.mark.parametrize(("name", "replacement"), [("test", "procedure=crossed"), ("cluster", "random_factors=")])
def test_retired_settings_are_refused_with_what_replaced_them(name, replacement):
    study = study_with_answers(raters=1)
    with pytest.raises(SettingsError, match=f"{name}: no longer a setting; .*{replacement}"):
        analysis_settings(study, {name: "two-way"})


def test_the_study_declares_which_factors_are_fixed_and_a_link_may_override_them():
    study = study_with_answers(raters=1, fixed_factors=["subject"])
    assert analysis_settings(study).random_factors == ("rater", "prompt")
    assert analysis_settings(study, {"random_factors": "rater,subject,prompt"}).random_factors == FACTORS
    assert analysis_settings(study, {"random_factors": "none"}).random_factors == ()
    study.fixed_factors = ["seed"]
    with pytest.raises(RulesError, match="fixed_factors: expected a list of names from rater, subject, prompt"):
        analysis_settings(study)


def test_with_one_subject_and_the_subject_random_no_cell_is_tested_and_each_says_why():
    study = study_with_answers(raters=6, fixed_factors=[])
    found = study_results(study, FAST)
    assert found.settings.random_factors == FACTORS
    for row in found.primary.rows:
        assert not row.estimate.testable and row.mark == "" and np.isnan(row.pvalue)
        assert row.note == "not tested: too few subjects to test: 1 with a decided answer, 3 needed"


def test_a_cache_hit_reads_no_answer_and_builds_no_table():
    study = study_with_answers(raters=6)
    first = study_results(study, FAST)
    with CaptureQueriesContext(connection) as hit:
        again = study_results(study, FAST)
    answer_reads = [q["sql"] for q in hit.captured_queries if '"studyapp_answer"' in q["sql"]]
    assert len(answer_reads) == 1 and "COUNT(" in answer_reads[0]  # the fingerprint's aggregate, no rows
    assert again.data_hash == first.data_hash and again.primary.rows == first.primary.rows
    Answer.objects.filter(pk=Answer.objects.filter(pair__study=study).order_by("id").first().pk).delete()
    assert study_results(study, FAST).n_answers == first.n_answers - 1  # a change is never served from the cache


def test_the_data_hash_changes_with_any_answer_and_only_then():
    study = study_with_answers(raters=2)
    first = study_results(study, FAST).data_hash
    assert study_results(study, {"n_resamples": 100}).data_hash == first
    add_answers(study, raters=1, name_prefix="late")
    assert study_results(study, FAST).data_hash != first


def test_results_json_is_strict_json_with_null_for_undefined_numbers():
    study = study_with_answers(raters=0)
    rater = Rater.objects.create(study=study, source="open", external_id="one")
    answer(rater, _regular_pair(study), "tie").save()  # no decisive answer anywhere: win rates are undefined

    data = results_json(study, study_results(study, FAST))

    text = json.dumps(data, allow_nan=False)
    assert data["with_exclusions"]["rows"][0]["win_rate"] is None
    assert data["with_exclusions"]["rows"][0]["tie_rate"] == 1.0
    assert "NaN" not in text
    assert str(rater.pk) not in [r["rater"] for r in data["all_raters"]["rater_quality"]]


def test_metrics_are_compared_with_the_human_answers_per_pair():
    study = study_with_answers(raters=0, methods=2)
    pairs = list(study.pairs.filter(kind=Pair.Kind.REGULAR).select_related("image_a", "image_b"))
    for pair in pairs:
        MetricScore.objects.create(image=pair.image_a, metric="clip_ts", value=0.30)
        MetricScore.objects.create(image=pair.image_b, metric="clip_ts", value=0.20)
    rater = Rater.objects.create(study=study, source="open", external_id="agrees")
    Answer.objects.bulk_create([answer(rater, p, "a", text="a" if i else "b") for i, p in enumerate(pairs)])

    found = study_results(study, FAST)
    rows = human_metric_agreement(answer_table(study), found.comparisons, PairMetrics.of(study), ("prompt",))

    text_rows = [r for r in rows if r["metric"] == "clip_ts" and r["comparison"] is None]
    assert text_rows[0]["n"] == len(pairs) and text_rows[0]["n_agree"] == len(pairs) - 1
    assert text_rows[0]["interval_method"] == "crossed"  # clustered by prompt, the random factor given
    image_rows = [r for r in rows if r["metric"] == "clip_is"]
    assert all(r["n"] == 0 for r in image_rows)  # no CLIP-IS stored
    cached = [(r["metric"], r["comparison"], r["n"], r["n_agree"]) for r in found.computed.human_metric]
    assert cached == [(r["metric"], r["comparison"], r["n"], r["n_agree"]) for r in rows]


def test_metric_differences_pair_the_images_of_each_slot():
    study = study_with_answers(raters=2, methods=2)
    pairs = list(study.pairs.filter(kind=Pair.Kind.REGULAR).select_related("image_a", "image_b"))
    differences = []
    for index, pair in enumerate(pairs):
        differences.append(0.10 + (0.02 if index % 2 else -0.01) + 0.005 * (pair.prompt_id % 3))
        MetricScore.objects.create(image=pair.image_a, metric="clip_is", value=0.40 + differences[-1])
        MetricScore.objects.create(image=pair.image_b, metric="clip_is", value=0.40)
    (row,) = study_results(study, FAST).computed.metric_differences
    assert row["metric"] == "clip_is" and row["n"] == len(pairs)
    assert row["difference"] == pytest.approx(np.mean(differences))
    assert row["ci_low"] < row["difference"] < row["ci_high"] and row["random_factors"] == ("prompt",)


def test_method_metric_summary_matches_population_statistics():
    study = study_with_answers(raters=0, methods=2)
    pair = _regular_pair(study)
    images = list(pair.image_a.method.images.all()[:3])
    for image, value in zip(images, (0.1, 0.2, 0.6), strict=False):
        MetricScore.objects.create(image=image, metric="clip_is", value=value)

    summary = method_metric_summary([pair.image_a.method_id])

    clip_is = summary[pair.image_a.method_id]["clip_is"]
    assert clip_is["n"] == 3
    assert clip_is["mean"] == pytest.approx(0.3)
    assert clip_is["std"] == pytest.approx(np.std([0.1, 0.2, 0.6]))


def test_a_snapshot_stays_as_frozen_when_more_answers_arrive():
    study = study_with_answers(raters=3)
    snapshot = create_snapshot(study, label="paper v1", overrides=FAST)
    frozen = json.loads(json.dumps(snapshot.results))
    assert snapshot_matches_current_data(snapshot)

    add_answers(study, raters=3, a_wins=0.1, name_prefix="late", seed=5)

    stored = AnalysisSnapshot.objects.get(pk=snapshot.pk)
    assert stored.results == frozen
    assert stored.answer_count == snapshot.answer_count == 3 * 16
    assert stored.settings["n_resamples"] == 200
    assert not snapshot_matches_current_data(stored)
    now = results_json(study, study_results(study, FAST))
    assert now["data_hash"] != stored.data_hash
    assert now["with_exclusions"]["rows"][0]["wins"] != stored.results["with_exclusions"]["rows"][0]["wins"]


def test_pseudonyms_are_stable_distinct_and_hide_the_id(settings):
    assert pseudonym(7) == pseudonym(7)
    assert pseudonym(7) != pseudonym(8)
    before = pseudonym(7)
    settings.SECRET_KEY = "another-secret-key-for-this-test-only-0123456789"
    assert pseudonym(7) != before
