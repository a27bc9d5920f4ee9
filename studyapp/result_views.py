"""Staff pages: a study's results (Table-1 layout, chart, ranking, rater quality), exports, method pages."""

from __future__ import annotations

import math
from typing import Any

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.db.models import Q
from django.http import Http404, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from studyapp import exports, results
from studyapp.models import AnalysisSnapshot, Comparison, Concept, Method, Study
from studyapp.scoring import pareto_svg, study_methods
from studyapp.setup import QUESTIONS

# Chart geometry (SVG user units).
LABEL_WIDTH, PANEL_WIDTH, GAP, ROW_HEIGHT, TOP = 250, 300, 40, 24, 40
STACK_COLOURS = {"wins": "#2e7d32", "ties": "#b0b4bb", "losses": "#c62828"}


# ------------------------------------------------------------------------------- formatting


def _finite(value) -> bool:
    return value is not None and isinstance(value, (int, float)) and math.isfinite(value)


def percent(value) -> str:
    return f"{100 * value:.1f}%" if _finite(value) else "–"


def interval(low, high) -> str:
    return f"[{100 * low:.1f}, {100 * high:.1f}]" if _finite(low) and _finite(high) else "–"


def pvalue(value) -> str:
    if not _finite(value):
        return "–"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def number(value, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if _finite(value) else "–"


def interval_of(ci, digits: int = 3) -> str:
    return f"[{number(ci.low, digits)}, {number(ci.high, digits)}]"


# ------------------------------------------------------------------------------- page parts


def table_one(study_results: results.StudyResults, analysis, metrics: dict) -> dict[str, Any]:
    """Rows: the three questions, then the metrics of A and B; columns: comparisons."""
    columns = list(study_results.comparisons)
    rows = []
    for question_id, question in enumerate(QUESTIONS):
        cells = []
        for comparison in columns:
            row = analysis.row(comparison.pk, question_id)
            e = row.estimate
            cells.append({
                "win_rate": percent(e.win_rate), "interval": interval(e.win_rate_ci.low, e.win_rate_ci.high),
                "n": e.n, "wins": e.wins, "ties": e.ties, "losses": e.losses, "tie_rate": percent(e.tie_rate),
                "adjusted_p": pvalue(row.adjusted_pvalue), "mark": row.mark,
            })  # fmt: skip
        rows.append({"question": question, "cells": cells})
    metric_rows = []
    for metric in results.SHOWN_METRICS:
        cells = []
        for comparison in columns:
            a = metrics.get(comparison.method_a_id, {}).get(metric)
            b = metrics.get(comparison.method_b_id, {}).get(metric)
            cells.append({"a": number(a["mean"]) if a else "–", "b": number(b["mean"]) if b else "–"})
        metric_rows.append({"metric": results.METRIC_LABELS[metric], "cells": cells})
    return {"columns": columns, "rows": rows, "metric_rows": metric_rows}


def _x(value: float) -> float:
    return round(PANEL_WIDTH * min(max(value, 0.0), 1.0), 2)


def win_rate_chart(study_results: results.StudyResults, analysis) -> dict[str, Any]:
    """Geometry of the SVG chart: per comparison x question, a W/T/L stacked bar (share of all
    answers) and the decisive win rate with its interval whiskers."""
    bars = []
    for index, row in enumerate(analysis.rows):
        e = row.estimate
        y = TOP + index * ROW_HEIGHT
        segments, start = [], 0.0
        for name, count in (("wins", e.wins), ("ties", e.ties), ("losses", e.losses)):
            share = count / e.n if e.n else 0.0
            segments.append(
                {"x": _x(start), "width": _x(share), "colour": STACK_COLOURS[name], "name": name, "count": count}
            )
            start += share
        point = None
        if _finite(e.win_rate):
            point = {"x": _x(e.win_rate)}
            if _finite(e.win_rate_ci.low) and _finite(e.win_rate_ci.high):
                point.update(low=_x(e.win_rate_ci.low), high=_x(e.win_rate_ci.high))
        bars.append({
            "label": f"{row.label} · {QUESTIONS[row.question]}", "y": y, "mid": y + ROW_HEIGHT / 2 - 2,
            "segments": segments, "point": point, "mark": row.mark,
            "summary": f"W {e.wins} / T {e.ties} / L {e.losses}; win rate {percent(e.win_rate)} "
                       f"{interval(e.win_rate_ci.low, e.win_rate_ci.high)}",
        })  # fmt: skip
    panel_b = LABEL_WIDTH + PANEL_WIDTH + GAP
    height = TOP + max(len(bars), 1) * ROW_HEIGHT + 30
    ticks = [{"value": f"{t:g}", "x": _x(t)} for t in (0, 0.25, 0.5, 0.75, 1)]
    return {
        "bars": bars, "width": panel_b + PANEL_WIDTH + 20, "height": height, "label_width": LABEL_WIDTH,
        "panel_width": PANEL_WIDTH, "panel_b": panel_b, "half": _x(0.5), "ticks": ticks, "axis_y": height - 26,
        "bar_height": ROW_HEIGHT - 8, "level": f"{100 * study_results.settings.confidence_level:g}%",
    }  # fmt: skip


def bradley_terry_tables(analysis, method_names: dict[int, str]) -> list[dict[str, Any]]:
    tables = []
    for question_id, fit in sorted(analysis.bradley_terry.items()):
        ranking = [
            {"rank": r["rank"], "method": method_names.get(r["method"], r["method"]), "score": number(r["score"]),
             "interval": f"[{number(r['ci_low'])}, {number(r['ci_high'])}]"}  # fmt: skip
            for r in fit.ranking()
        ]
        tables.append({
            "question": QUESTIONS[question_id], "ranking": ranking, "left_advantage": number(fit.left_advantage),
            "left_interval": interval_of(fit.left_advantage_ci),
            "converged": fit.converged, "failed": fit.failed_resamples,
        })  # fmt: skip
    return tables


def rater_quality_rows(study_results: results.StudyResults, analysis) -> list[dict[str, Any]]:
    reasons = study_results.exclusion_reasons()
    rows = []
    for row in analysis.rater_quality.rows():
        rater = int(row["raters"])
        rows.append({
            "rater": rater, "pseudonym": results.pseudonym(rater), "answers": row["n_pairs"],
            "gold": f"{row['gold_correct']}/{row['gold_answers']}" if row["gold_answers"] else "–",
            "gold_accuracy": percent(row["gold_accuracy"]),
            "attention": f"{row['attention_failures']}/{row['attention_checks']}" if row["attention_checks"] else "–",
            "median_time": f"{row['median_time_ms'] / 1000:.1f} s" if _finite(row["median_time_ms"]) else "–",
            "left_share": percent(row["left_share"]), "left_p": pvalue(row["left_pvalue"]),
            "reasons": reasons.get(rater, []),
        })  # fmt: skip
    return rows


def agreement_rows(analysis) -> list[dict[str, Any]]:
    rows = []
    for question_id, found in sorted(analysis.agreement.items()):
        rows.append({
            "question": QUESTIONS[question_id], "units": found.n_units, "answers": found.n_answers,
            "raw": percent(found.raw_agreement), "kappa": number(found.fleiss_kappa),
            "alpha": number(found.krippendorff_alpha),
            "alpha_interval": interval_of(found.krippendorff_alpha_ci),
        })  # fmt: skip
    return rows


def _setting_params(request) -> dict[str, str]:
    return {name: request.GET[name] for name in results.SETTING_PARAMS if request.GET.get(name, "") != ""}


def _study_results_or_error(request, study: Study):
    try:
        return results.study_results(study, _setting_params(request)), None
    except results.SettingsError as exc:
        return None, HttpResponseBadRequest(f"analysis settings: {exc}", content_type="text/plain")


# ------------------------------------------------------------------------------- views


@staff_member_required
def study_results_page(request, pk: int):
    study = get_object_or_404(Study, pk=pk)
    context: dict[str, Any] = {"study": study, "query": request.GET.urlencode()}
    try:
        found, bad_request = _study_results_or_error(request, study)
    except results.RulesError as exc:
        context["error"] = str(exc)
        return render(request, "studyapp/results.html", context)
    if bad_request:
        return bad_request
    method_names = {}
    for comparison in found.comparisons:
        method_names[comparison.method_a_id] = comparison.method_a.name
        method_names[comparison.method_b_id] = comparison.method_b.name
    metrics = results.method_metric_summary(method_names)
    exclusions = found.sensitivity.exclusions
    context.update(
        results=found,
        settings=found.settings_dict(),
        primary=table_one(found, found.primary, metrics),
        everyone=table_one(found, found.all_raters, metrics),
        chart=win_rate_chart(found, found.primary),
        bradley_terry=bradley_terry_tables(found.primary, method_names),
        agreement=agreement_rows(found.primary),
        quality=rater_quality_rows(found, found.all_raters),
        quality_summary={
            "left_share": percent(found.all_raters.rater_quality.study_left_share),
            "median_time": number(found.all_raters.rater_quality.cohort_median_time_ms / 1000, 1),
        },
        by_rule=exclusions.counts_by_rule() if exclusions else {},
        human_metric=[
            {**row, "share": percent(row["share"]), "interval": interval(row["ci_low"], row["ci_high"])}
            for row in results.human_metric_agreement(study, found)
        ],
        methods=[
            {"pk": pk_, "name": name, "metrics": [metrics.get(pk_, {}).get(m) for m in results.SHOWN_METRICS]}
            for pk_, name in sorted(method_names.items(), key=lambda item: item[1])
        ],
        metric_labels=[results.METRIC_LABELS[m] for m in results.SHOWN_METRICS],
        has_pareto=any({"clip_ts", "clip_is"} <= set(m) for m in metrics.values()),
        snapshots=list(study.snapshots.only("pk", "label", "data_hash", "answer_count", "created", "study_id")),
    )
    return render(request, "studyapp/results.html", context)


@staff_member_required
def study_export(request, pk: int, what: str, file_format: str):
    """/studies/<id>/export/results.csv, results.json, answers.csv, answers.json."""
    study = get_object_or_404(Study, pk=pk)
    if file_format not in exports.FORMATS or what not in ("results", "answers"):
        raise Http404(f"export {what}.{file_format}: expected results or answers as csv or json")
    if what == "answers":
        return exports.answers_response(study, file_format)
    try:
        found, bad_request = _study_results_or_error(request, study)
    except results.RulesError as exc:
        return HttpResponseBadRequest(str(exc), content_type="text/plain")
    return bad_request or exports.results_response(study, found, file_format)


@staff_member_required
@require_POST
def study_snapshot_create(request, pk: int):
    study = get_object_or_404(Study, pk=pk)
    try:
        snapshot = results.create_snapshot(study, label=request.POST.get("label", "")[:200])
    except results.RulesError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Snapshot {snapshot.pk} saved (data hash {snapshot.data_hash[:12]}…).")
    return redirect("study-results", pk=study.pk)


@staff_member_required
def snapshot_json(request, pk: int, snapshot_pk: int):
    snapshot = get_object_or_404(AnalysisSnapshot, pk=snapshot_pk, study_id=pk)
    fields = ("label", "created", "data_hash", "answer_count", "settings", "results")
    return JsonResponse(
        {"id": snapshot.pk, **{name: getattr(snapshot, name) for name in fields}}, json_dumps_params={"indent": 1}
    )


@staff_member_required
def study_pareto(request, pk: int):
    study = get_object_or_404(Study, pk=pk)
    svg = pareto_svg(study_methods(study), title=study.title)
    if svg is None:
        raise Http404(f"study {study.slug}: no method has both CLIP-TS and CLIP-IS yet")
    return HttpResponse(svg, content_type="image/svg+xml")


@staff_member_required
def method_page(request, pk: int):
    method = get_object_or_404(Method, pk=pk)
    overall = results.method_metric_summary([method.pk]).get(method.pk, {})
    per_concept = results.method_metric_summary([method.pk], by_concept=True)
    concepts = {c.pk: c for c in Concept.objects.filter(pk__in=[concept for _, concept in per_concept])}
    concept_rows = [
        {"concept": concepts[concept], "metrics": [values.get(m) for m in results.SHOWN_METRICS]}
        for (_, concept), values in sorted(per_concept.items(), key=lambda item: concepts[item[0][1]].slug)
    ]
    in_study = Q(comparisons__method_a=method) | Q(comparisons__method_b=method)
    studies = list(Study.objects.filter(in_study).distinct().order_by("-created"))
    study_method_ids: dict[int, set[int]] = {}
    comparisons = Comparison.objects.filter(study__in=studies)
    for study_id, a, b in comparisons.values_list("study_id", "method_a_id", "method_b_id"):
        study_method_ids.setdefault(study_id, set()).update((a, b))
    plotted = {pk for pk, values in results.method_metric_summary(set().union(*study_method_ids.values())).items()
               if {"clip_ts", "clip_is"} <= set(values)}  # fmt: skip
    context = {
        "method": method,
        "overall": [overall.get(m) for m in results.SHOWN_METRICS],
        "concept_rows": concept_rows,
        "metric_labels": [results.METRIC_LABELS[m] for m in results.SHOWN_METRICS],
        "studies": [{"study": s, "has_pareto": bool(study_method_ids.get(s.pk, set()) & plotted)} for s in studies],
    }
    return render(request, "studyapp/method.html", context)
