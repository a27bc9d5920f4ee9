"""Pareto fronts of (text similarity, image similarity) and the TS-vs-IS plot of the paper.

Both coordinates are maximised. A point is on the front when no other point is at least
as good in both coordinates and strictly better in one; identical points are all kept.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class SweepPoint:
    """One method configuration: its family (sampler), a label of its hyper-parameters and its scores."""

    family: str
    label: str
    ts: float
    image_similarity: float
    params: dict = field(default_factory=dict, compare=False)

    @property
    def coordinates(self) -> tuple[float, float]:
        return self.ts, self.image_similarity


def _coordinates(point) -> tuple[float, float]:
    if isinstance(point, SweepPoint):
        return point.coordinates
    ts, image_similarity = point
    return float(ts), float(image_similarity)


def pareto_indices(points: Sequence, key: Callable | None = None) -> list[int]:
    """Indices of the points on the front, ordered by increasing TS (identical points by index)."""
    key = key or _coordinates
    coordinates = [key(point) for point in points]
    for index, (ts, image_similarity) in enumerate(coordinates):
        if not (math.isfinite(ts) and math.isfinite(image_similarity)):
            raise ValueError(f"point {index}: expected finite (TS, IS), got ({ts}, {image_similarity})")
    order = sorted(range(len(points)), key=lambda i: (-coordinates[i][0], -coordinates[i][1]))
    front: list[int] = []
    best = None  # the front point with the highest IS seen so far (it has the highest TS among ties)
    for index in order:
        if best is None or coordinates[index][1] > best[1] or coordinates[index] == best:
            front.append(index)
            best = coordinates[index]
    return sorted(front, key=lambda i: (coordinates[i][0], -coordinates[i][1], i))


def pareto_front(points: Sequence, key: Callable | None = None) -> list:
    """The points (pairs ``(ts, is)`` or ``SweepPoint``) that no other point dominates."""
    return [points[index] for index in pareto_indices(points, key)]


def plot_pareto(
    points: Iterable[SweepPoint],
    out: str | os.PathLike,
    *,
    title: str = "",
    ts_label: str = "CLIP-TS",
    is_label: str = "CLIP-IS",
) -> list[Path]:
    """Plot TS (x) against IS (y): one curve per family, each point labelled with its
    hyper-parameters, the overall front dashed. Writes ``out`` as SVG and PNG; returns both paths."""
    import matplotlib

    matplotlib.use("Agg")
    points = list(points)
    if not points:
        raise ValueError("Pareto plot: expected at least one point, got none")
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # keep labels as searchable SVG text
        return _draw(points, Path(out), title, ts_label, is_label)


def plain_text(text: str) -> str:
    """Text that matplotlib draws as written: a pair of '$' would start mathtext, and a malformed
    formula such as '$\\frac$' raises while drawing. An escaped '\\$' is a literal dollar sign."""
    return str(text).replace("$", r"\$")


def _draw(points: list[SweepPoint], base: Path, title: str, ts_label: str, is_label: str) -> list[Path]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 5.5))
    axes = figure.subplots()
    families = sorted({point.family for point in points})
    for family in families:
        members = _sweep_order([p for p in points if p.family == family])
        axes.plot([p.ts for p in members], [p.image_similarity for p in members], marker="o", label=plain_text(family))
        for member in members:
            if member.label:
                label = plain_text(member.label)
                axes.annotate(label, member.coordinates, textcoords="offset points", xytext=(4, 4), fontsize=7)
    front = pareto_front(points)
    axes.plot(
        [p.ts for p in front],
        [p.image_similarity for p in front],
        linestyle="--",
        color="black",
        linewidth=1,
        label="Pareto front",
    )
    axes.set_xlabel(plain_text(ts_label))
    axes.set_ylabel(plain_text(is_label))
    if title:
        axes.set_title(plain_text(title))
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()

    base.parent.mkdir(parents=True, exist_ok=True)
    written = [base.with_suffix(".svg"), base.with_suffix(".png")]
    for path in written:
        figure.savefig(path, dpi=150)
    return written


def _sweep_order(members: list[SweepPoint]) -> list[SweepPoint]:
    """Along the swept hyper-parameters when they are comparable, else by TS."""
    keys = varying_params([member.params for member in members])
    try:
        return sorted(members, key=lambda p: tuple(p.params.get(key) for key in keys) + p.coordinates)
    except TypeError:
        return sorted(members, key=lambda p: p.coordinates)


def params_label(params: dict, varying: Iterable[str] | None = None) -> str:
    """Compact "w_c=4, t_sw=10" label, restricted to ``varying`` keys when given."""
    keys = [key for key in params if varying is None or key in set(varying)]
    return ", ".join(f"{key}={_short(params[key])}" for key in keys)


def varying_params(param_sets: Sequence[dict]) -> list[str]:
    """Keys whose values differ between the given configurations of one family."""
    keys = list(dict.fromkeys(key for params in param_sets for key in params))
    return [key for key in keys if len({repr(params.get(key)) for params in param_sets}) > 1]


def _short(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
