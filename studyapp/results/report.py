"""The results as flat rows (the win-rate table) and as strict JSON: what the exports, the API and
snapshots give out."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from studyapp import stats
from studyapp.models import QUESTIONS, Study
from studyapp.results.analysis import StudyResults
from studyapp.results.metrics import method_metric_summary
from studyapp.results.pseudonyms import pseudonym


def json_safe(value: Any) -> Any:
    """Plain JSON types only: NaN and infinities become None, numpy scalars and arrays become Python."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def question_name(question_id: int) -> str:
    return QUESTIONS[int(question_id)]


def result_rows(results: StudyResults, analysis: stats.AnalysisResult, label: str) -> list[dict[str, Any]]:
    """The win-rate table: one flat row per comparison x question, with names, settings and exclusions."""
    names = {c.pk: (c.method_a.name, c.method_b.name) for c in results.comparisons}
    rules = json.dumps(dataclasses.asdict(results.rules) if results.rules else {}, sort_keys=True)
    rows = []
    for row in analysis.export_rows():
        method_a, method_b = names[row["comparison"]]
        rows.append(
            {
                "analysis": label,
                "question_name": question_name(row["question"]),
                "method_a_name": method_a,
                "method_b_name": method_b,
                **row,
                "setting_exclusion_rules": rules,
                "excluded_by_hand": len(results.excluded_by_hand),
                "data_hash": results.data_hash,
            }
        )
    return rows


def _analysis_json(results: StudyResults, analysis: stats.AnalysisResult, label: str, method_names) -> dict:
    reasons = results.exclusion_reasons()
    quality = []
    for row in analysis.rater_quality.rows():
        rater = int(row.pop("raters"))
        quality.append({"rater": pseudonym(rater), **row, "exclusion_reasons": reasons.get(rater, [])})
    bradley_terry = {}
    for question, fit in analysis.bradley_terry.items():
        ranking = [{**r, "method": method_names.get(r["method"], r["method"])} for r in fit.ranking()]
        bradley_terry[question_name(question)] = {
            "ranking": ranking,
            "left_advantage": fit.left_advantage,
            "left_advantage_ci": list(fit.left_advantage_ci),
            "tie_log_nu": fit.tie_log_nu,
            "ties": fit.ties,
            "ridge": fit.ridge,
            "converged": fit.converged,
            "failed_resamples": fit.failed_resamples,
            "procedure": fit.procedure,
            "df": fit.df,
        }
    agreement = {}
    for question, found in analysis.agreement.items():
        values = dataclasses.asdict(found)
        values["krippendorff_alpha_ci"] = list(found.krippendorff_alpha_ci)
        agreement[question_name(question)] = values
    return {
        "procedure": analysis.procedure,
        "tests_in_family": analysis.n_tests,
        "resamples_used": analysis.n_resamples,
        "warnings": list(analysis.warnings),
        "rows": result_rows(results, analysis, label),
        "bradley_terry": bradley_terry,
        "agreement": agreement,
        "rater_quality": quality,
        "study_left_share": analysis.rater_quality.study_left_share,
        "cohort_median_time_ms": analysis.rater_quality.cohort_median_time_ms,
        "excluded_raters": len(analysis.excluded_raters),
        "answer_rows": analysis.n_answers,
        "excluded_answer_rows": analysis.n_excluded_answers,
    }


def results_json(study: Study, results: StudyResults) -> dict[str, Any]:
    """The whole results as strict JSON (NaN becomes null); what snapshots freeze."""
    methods = {}
    for comparison in results.comparisons:
        methods[comparison.method_a_id] = comparison.method_a.name
        methods[comparison.method_b_id] = comparison.method_b.name
    metrics = method_metric_summary(methods)
    exclusions = results.sensitivity.exclusions
    return json_safe(
        {
            "study": {"id": study.pk, "slug": study.slug, "title": study.title, "version": study.version},
            "data_hash": results.data_hash,
            "settings": results.settings_dict(),
            "answers": results.n_answers,
            "raters": results.n_raters,
            "exclusions": {
                "excluded_raters": len(results.excluded_raters),
                "excluded_by_hand": len(results.excluded_by_hand),
                "by_rule": exclusions.counts_by_rule() if exclusions else {},
                "raters": {pseudonym(r): reasons for r, reasons in results.exclusion_reasons().items()},
            },
            "comparisons": [
                {"id": c.pk, "label": str(c), "method_a": c.method_a.name, "method_b": c.method_b.name}
                for c in results.comparisons
            ],
            "metrics": {name: metrics.get(pk, {}) for pk, name in methods.items()},
            "with_exclusions": _analysis_json(results, results.primary, "with_exclusions", methods),
            "all_raters": _analysis_json(results, results.all_raters, "all_raters", methods),
            "human_metric_agreement": list(results.computed.human_metric),
            "metric_differences": list(results.computed.metric_differences),
            "breakdowns": {by: list(rows) for by, rows in results.computed.breakdowns.items()},
        }
    )
