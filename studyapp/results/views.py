"""Staff pages: a study's results (Table-1 layout, chart, ranking, rater quality), exports, snapshots,
the Pareto plot and method pages."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.db.models import Q
from django.http import Http404, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from studyapp.models import AnalysisSnapshot, Comparison, Concept, Method, Study
from studyapp.results import exports
from studyapp.results.analysis import SettingsError, settings_overrides, study_results
from studyapp.results.exclusions import RulesError
from studyapp.results.metrics import METRIC_LABELS, SHOWN_METRICS, method_metric_summary, pareto_svg, study_methods
from studyapp.results.page import (
    agreement_rows,
    bradley_terry_tables,
    breakdown_rows,
    interval,
    metric_difference_rows,
    number,
    percent,
    rater_quality_rows,
    table_one,
    win_rate_chart,
)
from studyapp.results.snapshots import create_snapshot
from studyapp.staff import staff_permission_required


def _study_results_or_error(request, study: Study):
    try:
        return study_results(study, settings_overrides(request.GET)), None
    except SettingsError as exc:
        return None, HttpResponseBadRequest(f"analysis settings: {exc}", content_type="text/plain")


@staff_permission_required("studyapp.view_study")
def study_results_page(request, pk: int):
    study = get_object_or_404(Study, pk=pk)
    overrides = settings_overrides(request.GET)
    context: dict[str, Any] = {"study": study, "query": request.GET.urlencode(), "overrides": overrides}
    try:
        found, bad_request = _study_results_or_error(request, study)
    except RulesError as exc:
        context["error"] = str(exc)
        return render(request, "studyapp/results/results.html", context)
    if bad_request:
        return bad_request
    method_names = {}
    for comparison in found.comparisons:
        method_names[comparison.method_a_id] = comparison.method_a.name
        method_names[comparison.method_b_id] = comparison.method_b.name
    metrics = method_metric_summary(method_names)
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
        legend=found.primary.procedure,
        warnings=found.primary.warnings,
        untested=sum(not row.estimate.testable for row in found.primary.rows),
        human_metric=[
            {**row, "share": percent(row["share"]), "interval": interval(row["ci_low"], row["ci_high"])}
            for row in found.computed.human_metric
        ],
        metric_differences=metric_difference_rows(found),
        methods=[
            {"pk": pk_, "name": name, "metrics": [metrics.get(pk_, {}).get(m) for m in SHOWN_METRICS]}
            for pk_, name in sorted(method_names.items(), key=lambda item: item[1])
        ],
        metric_labels=[METRIC_LABELS[m] for m in SHOWN_METRICS],
        has_pareto=any({"clip_ts", "clip_is"} <= set(m) for m in metrics.values()),
        snapshots=list(study.snapshots.only("pk", "label", "data_hash", "answer_count", "created", "study_id")),
    )
    return render(request, "studyapp/results/results.html", context)


@staff_permission_required("studyapp.view_study")
def study_breakdown(request, pk: int, by: str):
    """/studies/<id>/results/by-subject/ or by-prompt/: exploratory win rates per subject or prompt."""
    study = get_object_or_404(Study, pk=pk)
    if by not in ("subject", "prompt"):
        raise Http404(f"breakdown by {by!r}: expected subject or prompt")
    try:
        found, bad_request = _study_results_or_error(request, study)
    except RulesError as exc:
        return HttpResponseBadRequest(str(exc), content_type="text/plain")
    if bad_request:
        return bad_request
    context = {
        "study": study,
        "by": by,
        "rows": breakdown_rows(found, by),
        "results": found,
        "query": request.GET.urlencode(),
        "level": f"{100 * found.settings.confidence_level:g}%",
        "random": ", ".join(f for f in found.settings.random_factors if f != by) or "none",
    }
    return render(request, "studyapp/results/breakdown.html", context)


@staff_permission_required("studyapp.export_study")
def study_export(request, pk: int, what: str, file_format: str):
    """/studies/<id>/export/results.{csv,json,tex,md}, answers.{csv,json}."""
    study = get_object_or_404(Study, pk=pk)
    try:
        exports.check_export(what, file_format)
    except ValueError as exc:
        raise Http404(str(exc)) from None
    if what == "answers":
        return exports.answers_response(study, file_format)
    try:
        found, bad_request = _study_results_or_error(request, study)
    except RulesError as exc:
        return HttpResponseBadRequest(str(exc), content_type="text/plain")
    return bad_request or exports.results_response(study, found, file_format)


@staff_permission_required("studyapp.add_analysissnapshot")
@require_POST
def study_snapshot_create(request, pk: int):
    study = get_object_or_404(Study, pk=pk)
    overrides = settings_overrides(request.POST)  # the settings on screen, carried by the form
    try:
        snapshot = create_snapshot(study, label=request.POST.get("label", "")[:200], overrides=overrides)
    except (RulesError, SettingsError) as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Snapshot {snapshot.pk} saved (data hash {snapshot.data_hash[:12]}…).")
    response = redirect("study-results", pk=study.pk)
    if overrides:
        response["Location"] += "?" + urlencode(overrides)
    return response


@staff_permission_required("studyapp.view_study")
def snapshot_json(request, pk: int, snapshot_pk: int):
    snapshot = get_object_or_404(AnalysisSnapshot, pk=snapshot_pk, study_id=pk)
    fields = ("label", "created", "data_hash", "answer_count", "settings", "results")
    return JsonResponse(
        {"id": snapshot.pk, **{name: getattr(snapshot, name) for name in fields}}, json_dumps_params={"indent": 1}
    )


@staff_permission_required("studyapp.view_study")
def study_pareto(request, pk: int):
    study = get_object_or_404(Study, pk=pk)
    svg = pareto_svg(study_methods(study), title=study.title)
    if svg is None:
        raise Http404(f"study {study.slug}: no method has both CLIP-TS and CLIP-IS yet")
    return HttpResponse(svg, content_type="image/svg+xml")


@staff_permission_required("studyapp.view_method")
def method_page(request, pk: int):
    method = get_object_or_404(Method, pk=pk)
    overall = method_metric_summary([method.pk]).get(method.pk, {})
    per_concept = method_metric_summary([method.pk], by_concept=True)
    concepts = {c.pk: c for c in Concept.objects.filter(pk__in=[concept for _, concept in per_concept])}
    concept_rows = [
        {"concept": concepts[concept], "metrics": [values.get(m) for m in SHOWN_METRICS]}
        for (_, concept), values in sorted(per_concept.items(), key=lambda item: concepts[item[0][1]].slug)
    ]
    in_study = Q(comparisons__method_a=method) | Q(comparisons__method_b=method)
    studies = list(Study.objects.filter(in_study).distinct().order_by("-created"))
    study_method_ids: dict[int, set[int]] = {}
    comparisons = Comparison.objects.filter(study__in=studies)
    for study_id, a, b in comparisons.values_list("study_id", "method_a_id", "method_b_id"):
        study_method_ids.setdefault(study_id, set()).update((a, b))
    plotted = {
        pk
        for pk, values in method_metric_summary(set().union(*study_method_ids.values())).items()
        if {"clip_ts", "clip_is"} <= set(values)
    }
    context = {
        "method": method,
        "overall": [overall.get(m) for m in SHOWN_METRICS],
        "concept_rows": concept_rows,
        "metric_labels": [METRIC_LABELS[m] for m in SHOWN_METRICS],
        "studies": [{"study": s, "has_pareto": bool(study_method_ids.get(s.pk, set()) & plotted)} for s in studies],
    }
    return render(request, "studyapp/results/method.html", context)
