"""The automatic metrics beside the human results: per-method summaries, agreement of metrics with raters,
and the Pareto plot of a study's methods (TS against IS)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db.models import Avg, Count, Q, StdDev

from studyapp import stats
from studyapp.models import Concept, GenerationRun, Method, MetricScore, Pair, Study
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


@dataclass(frozen=True)
class PairMetrics:
    """The study's regular pairs (images, subject, prompt) and the newest metric score of each image."""

    pairs: dict[int, tuple[int, int, int, int, int]]  # pair id -> (comparison, image A, image B, concept, prompt)
    scores: dict[tuple[int, str], float]  # (image id, metric) -> value

    @classmethod
    def of(cls, study: Study) -> PairMetrics:
        regular = Pair.objects.filter(study=study, kind=Pair.Kind.REGULAR)
        fields = ("id", "comparison_id", "image_a_id", "image_b_id", "concept_id", "prompt_id")
        pairs = {row[0]: row[1:] for row in regular.values_list(*fields)}
        scores: dict[tuple[int, str], float] = {}
        of_pairs = Q(image_id__in=regular.values("image_a_id")) | Q(image_id__in=regular.values("image_b_id"))
        rows = (
            MetricScore.objects.filter(of_pairs, metric__in=SHOWN_METRICS)
            .order_by("created", "id")
            .values_list("image_id", "metric", "value")
        )
        for image, metric, value in rows:
            scores[(image, metric)] = value  # the newest score per image and metric wins
        return cls(pairs, scores)

    def side(self, pair_ids: np.ndarray, metric: str, which: int) -> np.ndarray:
        """The metric of image A (which=1) or B (which=2) of each pair; NaN when unscored."""
        return np.array(
            [self.scores.get((self.pairs[p][which], metric), np.nan) if p in self.pairs else np.nan for p in pair_ids],
            float,
        )


def human_metric_agreement(
    table: stats.AnswerTable, comparisons, found: PairMetrics, random_factors=stats.FACTORS
) -> list[dict[str, Any]]:
    """Per comparison (and over all of them): on decided answers of ``table`` (already without the excluded
    raters), how often the metric of the two images picks the same method as the question it measures.

    The interval is clustered by the random factors among rater, subject and prompt, like the win rates."""
    groups = [(c.pk, str(c)) for c in comparisons] + [(None, "all comparisons")]
    out = []
    for question, metric in HUMAN_METRIC_CHECKS:
        rows = ~table.is_check & (table.question == QUESTION_IDS[question])
        pairs = table.pair[rows]
        side_a, side_b = found.side(pairs, metric, 1), found.side(pairs, metric, 2)
        for comparison, label in groups:
            keep = np.ones(pairs.size, bool) if comparison is None else table.comparison[rows] == comparison
            clusters = {f: getattr(table, f)[rows][keep] for f in random_factors}
            result = stats.metric_agreement(table.outcome[rows][keep], side_a[keep], side_b[keep], **clusters)
            out.append(
                {
                    "comparison": comparison,
                    "label": label,
                    "question": question,
                    "metric": metric,
                    "n": result.n,
                    "n_agree": result.n_agree,
                    "share": result.share,
                    "ci_low": result.share_ci.low,
                    "ci_high": result.share_ci.high,
                    "interval_method": result.interval_method,
                    "metric_ties": result.metric_ties,
                    "warnings": list(result.warnings),
                }
            )
    return out


def metric_differences(comparisons, found: PairMetrics, settings: stats.AnalysisSettings) -> list[dict[str, Any]]:
    """Per comparison and metric: the mean over image slots of metric(A's image) - metric(B's image),
    paired by slot (same subject, prompt and seed), with an interval clustered by subject and prompt."""
    slots: dict[int, set[tuple[int, int, int, int]]] = {}
    for comparison, image_a, image_b, concept, prompt in found.pairs.values():
        slots.setdefault(comparison, set()).add((image_a, image_b, concept, prompt))
    random = tuple(f for f in ("subject", "prompt") if f in settings.random_factors)
    out = []
    for comparison in comparisons:
        chosen = sorted(slots.get(comparison.pk, ()))
        for metric in SHOWN_METRICS:
            a = [found.scores.get((s[0], metric), np.nan) for s in chosen]
            b = [found.scores.get((s[1], metric), np.nan) for s in chosen]
            if not np.isfinite(np.array(a + b, float)).any():
                continue
            result = stats.metric_difference(
                a,
                b,
                subject=[s[2] for s in chosen],
                prompt=[s[3] for s in chosen],
                random_factors=random,
                confidence_level=settings.confidence_level,
            )
            values = {k: v for k, v in dataclasses.asdict(result).items() if k != "difference_ci"}
            out.append(
                {
                    "comparison": comparison.pk,
                    "label": str(comparison),
                    "metric": metric,
                    **values,
                    "ci_low": result.difference_ci.low,
                    "ci_high": result.difference_ci.high,
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


def pareto_points(methods: list[Method]) -> list:
    """The methods with both CLIP-TS and CLIP-IS as plot points: the methods of one sweep form a family (a
    line over the swept parameter), any other method is a family of its own (a lone point)."""
    from generation.pareto import SweepPoint, params_label, varying_params

    sweeps = dict(
        GenerationRun.objects.filter(method__in=methods, sweep__isnull=False)
        .order_by("created")
        .values_list("method_id", "sweep__name")
    )
    scored = []
    for method in methods:
        summary = method_metrics(method)
        if "clip_ts" in summary and "clip_is" in summary:
            scored.append((method, sweeps.get(method.pk, method.name), summary))
    varying = {family: varying_params([m.params for m, f, _ in scored if f == family]) for _, family, _ in scored}
    return [
        SweepPoint(
            family,
            params_label(method.params, varying[family]) if family != method.name else method.name,
            summary["clip_ts"].mean,
            summary["clip_is"].mean,
            method.params,
        )
        for method, family, summary in scored
    ]


def pareto_svg(methods: list[Method], title: str = "") -> str | None:
    """TS against IS for the methods that have both metrics; None when none does."""
    from generation.pareto import figure_bytes, pareto_figure

    points = pareto_points(methods)
    if not points:
        return None
    return figure_bytes(pareto_figure(points, title=title), "svg").decode()
