"""The automatic metrics beside the human results: per-method summaries, agreement of metrics with raters,
and the Pareto plot of a study's methods (TS against IS)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from django.db.models import Avg, Count, Q, StdDev

from studyapp import stats
from studyapp.models import Concept, Method, MetricScore, Pair, Study
from studyapp.results.analysis import StudyResults
from studyapp.results.table import QUESTION_IDS

SHOWN_METRICS = ("clip_ts", "clip_is", "dino_is")
METRIC_LABELS = {"clip_ts": "CLIP-TS", "clip_is": "CLIP-IS", "dino_is": "DINO-IS"}
# Which metric should pick the same winner as which question.
HUMAN_METRIC_CHECKS = (("text", "clip_ts"), ("image", "clip_is"), ("image", "dino_is"))


def method_metric_summary(method_ids, by_concept: bool = False) -> dict:
    """{method id: {metric: {"mean", "std", "n"}}} (or keyed by (method id, concept id)) in one query.

    Same numbers as `scoring.method_metrics` (population standard deviation)."""
    group = ["image__method_id", "image__concept_id", "metric"] if by_concept else ["image__method_id", "metric"]
    rows = (
        MetricScore.objects.filter(image__method_id__in=list(method_ids), metric__in=SHOWN_METRICS)
        .values(*group)
        .annotate(mean=Avg("value"), std=StdDev("value"), n=Count("id"))
        .order_by(*group)
    )
    summary: dict = {}
    for row in rows:
        key = (row["image__method_id"], row["image__concept_id"]) if by_concept else row["image__method_id"]
        summary.setdefault(key, {})[row["metric"]] = {"mean": row["mean"], "std": row["std"] or 0.0, "n": row["n"]}
    return summary


def human_metric_agreement(study: Study, results: StudyResults) -> list[dict[str, Any]]:
    """Per comparison (and over all of them): on decisive answers (after exclusions), how often the
    metric of the two images picks the same method as the question it measures."""
    table = results.table.without_raters(results.excluded_raters) if results.excluded_raters else results.table
    regular = Pair.objects.filter(study=study, kind=Pair.Kind.REGULAR)
    pair_images = {pk: (a, b) for pk, a, b in regular.values_list("id", "image_a_id", "image_b_id")}
    scores: dict[tuple[int, str], float] = {}
    score_rows = (
        MetricScore.objects.filter(metric__in=SHOWN_METRICS)
        .filter(Q(image_id__in=regular.values("image_a_id")) | Q(image_id__in=regular.values("image_b_id")))
        .order_by("created", "id")
        .values_list("image_id", "metric", "value")
    )
    for image, metric, value in score_rows:
        scores[(image, metric)] = value  # the newest score per image and metric wins
    groups = [(c.pk, str(c)) for c in results.comparisons] + [(None, "all comparisons")]
    out = []
    for question, metric in HUMAN_METRIC_CHECKS:
        rows = ~table.is_check & (table.question == QUESTION_IDS[question])
        pairs = table.pair[rows]
        side_a = np.array([scores.get((pair_images.get(p, (0, 0))[0], metric), np.nan) for p in pairs], float)
        side_b = np.array([scores.get((pair_images.get(p, (0, 0))[1], metric), np.nan) for p in pairs], float)
        for comparison, label in groups:
            keep = np.ones(pairs.size, bool) if comparison is None else table.comparison[rows] == comparison
            found = stats.metric_agreement(table.outcome[rows][keep], side_a[keep], side_b[keep])
            out.append(
                {
                    "comparison": comparison,
                    "label": label,
                    "question": question,
                    "metric": metric,
                    "n": found.n,
                    "n_agree": found.n_agree,
                    "share": found.share,
                    "ci_low": found.share_ci.low,
                    "ci_high": found.share_ci.high,
                    "metric_ties": found.metric_ties,
                }
            )
    return out


@dataclass(frozen=True)
class MetricSummary:
    metric: str
    mean: float
    std: float
    n: int


def method_metrics(method: Method, concept: Concept | None = None) -> dict[str, MetricSummary]:
    """Mean, std and count per metric over a method's images (optionally one concept's)."""
    scores = MetricScore.objects.filter(image__method=method)
    if concept is not None:
        scores = scores.filter(image__concept=concept)
    values: dict[str, list[float]] = {}
    for metric, value in scores.values_list("metric", "value"):
        values.setdefault(metric, []).append(value)
    return {
        metric: MetricSummary(metric, float(np.mean(v)), float(np.std(v)), len(v))
        for metric, v in sorted(values.items())
    }


def study_methods(study: Study) -> list[Method]:
    ids = set()
    for comparison in study.comparisons.all():
        ids.update((comparison.method_a_id, comparison.method_b_id))
    return list(Method.objects.filter(pk__in=ids).order_by("name"))


def pareto_svg(methods: list[Method], title: str = "") -> str | None:
    """TS against IS for the methods that have both metrics; None when fewer than one does."""
    from generation.pareto import SweepPoint, plot_pareto

    points = []
    for method in methods:
        summary = method_metrics(method)
        if "clip_ts" in summary and "clip_is" in summary:
            family = method.sampler or "external"
            points.append(
                SweepPoint(family, method.name, summary["clip_ts"].mean, summary["clip_is"].mean, method.params)
            )
    if not points:
        return None
    with tempfile.TemporaryDirectory() as folder:
        paths = plot_pareto(points, Path(folder) / "pareto.svg", title=title)
        return next(p for p in paths if p.suffix == ".svg").read_text()
