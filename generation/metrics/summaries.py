"""Per-image scores aggregated per (method, concept, prompt set), and over concepts and sets."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from generation.metrics.scoring import ImageScore

ALL = "*"
METRIC_NAMES = ("clip_is", "dino_is", "clip_ts", "clip_ts_without_class", "clip_ts_with_class")


@dataclass(frozen=True)
class MetricStats:
    mean: float
    std: float


@dataclass(frozen=True)
class GroupSummary:
    """Metrics of one (method, concept, prompt set) group, or an aggregate where a field is ``*``.

    Concept level: mean and population std over the set's prompts of per-prompt means.
    Across concepts (``concept == "*"``): mean and std over concepts of the concept-level means.
    """

    method: str
    category: str
    concept: str
    prompt_set: str
    n_images: int
    n_prompts: int
    n_concepts: int
    n_errors: int
    metrics: dict[str, MetricStats]

    def mean(self, metric: str) -> float:
        return self.metrics[metric].mean

    def to_dict(self) -> dict:
        row = asdict(self)
        row["metrics"] = {name: {"mean": stats.mean, "std": stats.std} for name, stats in self.metrics.items()}
        return row

    @classmethod
    def from_dict(cls, row: Mapping) -> GroupSummary:
        metrics = {name: MetricStats(**stats) for name, stats in row["metrics"].items()}
        return cls(**{**row, "metrics": metrics})


def mean_and_std(values: Sequence[float]) -> MetricStats:
    """Mean and population std (numpy's default, ddof=0)."""
    array = np.asarray(values, dtype=np.float64)
    return MetricStats(float(array.mean()), float(array.std()))


def summarize(scores: Iterable[ImageScore]) -> list[GroupSummary]:
    """Per (method, concept, prompt set) and aggregated over concepts (all, live, object) and sets."""
    scores = list(scores)
    rows: list[GroupSummary] = []
    for method in sorted({score.method for score in scores}):
        of_method = [score for score in scores if score.method == method]
        prompt_sets = sorted({score.prompt_set for score in of_method})
        for prompt_set in prompt_sets + ([ALL] if len(prompt_sets) > 1 else []):
            in_set = [s for s in of_method if prompt_set == ALL or s.prompt_set == prompt_set]
            concept_rows = [
                row
                for concept in sorted({s.concept for s in in_set})
                if (row := _concept_row(method, concept, prompt_set, [s for s in in_set if s.concept == concept]))
            ]
            rows += concept_rows
            rows += _across_concepts(method, prompt_set, concept_rows)
    return rows


def _concept_row(method: str, concept: str, prompt_set: str, scores: list[ImageScore]) -> GroupSummary | None:
    scored = [score for score in scores if score.error is None]
    if not scored:
        return None
    by_prompt: dict[tuple[str, str], list[ImageScore]] = defaultdict(list)
    for score in scored:
        by_prompt[(score.prompt_set, score.prompt_template)].append(score)
    metrics = {}
    for name in METRIC_NAMES:
        per_prompt = [np.mean([getattr(s, name) for s in group]) for group in by_prompt.values()]
        metrics[name] = mean_and_std(per_prompt)
    return GroupSummary(
        method,
        scored[0].category,
        concept,
        prompt_set,
        n_images=len(scored),
        n_prompts=len(by_prompt),
        n_concepts=1,
        n_errors=len(scores) - len(scored),
        metrics=metrics,
    )


def _across_concepts(method: str, prompt_set: str, concept_rows: list[GroupSummary]) -> list[GroupSummary]:
    groups = {ALL: concept_rows}
    for category in ("live", "object"):
        groups[category] = [row for row in concept_rows if row.category == category]
    rows = []
    for category, members in groups.items():
        if not members:
            continue
        metrics = {name: mean_and_std([row.mean(name) for row in members]) for name in METRIC_NAMES}
        rows.append(
            GroupSummary(
                method,
                category,
                ALL,
                prompt_set,
                n_images=sum(row.n_images for row in members),
                n_prompts=sum(row.n_prompts for row in members),
                n_concepts=len(members),
                n_errors=sum(row.n_errors for row in members),
                metrics=metrics,
            )
        )
    return rows


def overall(rows: Iterable[GroupSummary], method: str, category: str = ALL) -> GroupSummary:
    """The row over all concepts (of a category) and all prompt sets of a method."""
    candidates = [row for row in rows if row.method == method and row.concept == ALL and row.category == category]
    if not candidates:
        raise KeyError(f"summary: expected rows of method {method!r}, category {category!r}, got none")
    everything = [row for row in candidates if row.prompt_set == ALL]
    return everything[0] if everything else candidates[0]
