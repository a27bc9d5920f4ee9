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


FIGURE_FORMATS = ("svg", "png", "pdf")
SINGLE_MARKERS = ("s", "^", "D", "v", "P", "X", "<", ">", "h", "*")


def plot_pareto(
    points: Iterable[SweepPoint],
    out: str | os.PathLike,
    *,
    title: str = "",
    ts_label: str = "CLIP-TS",
    is_label: str = "CLIP-IS",
    formats: Sequence[str] = ("svg", "png"),
) -> list[Path]:
    """Plot TS (x) against IS (y) (see ``pareto_figure``) and write ``out`` in each of ``formats``."""
    figure = pareto_figure(points, title=title, ts_label=ts_label, is_label=is_label)
    base = Path(out)
    base.parent.mkdir(parents=True, exist_ok=True)
    written = [base.with_suffix(f".{file_format}") for file_format in formats]
    for path in written:
        path.write_bytes(figure_bytes(figure, path.suffix[1:]))
    return written


def pareto_figure(
    points: Iterable[SweepPoint], *, title: str = "", ts_label: str = "CLIP-TS", is_label: str = "CLIP-IS"
):
    """The paper's TS-vs-IS plot: a family with several points (a sweep) is one line in the order of its
    swept hyper-parameter, each point labelled with it; a family of one is a lone point labelled with its
    name; points on the overall Pareto front are ringed. Axes carry plain decimals, never an offset."""
    from matplotlib.figure import Figure

    points = list(points)
    if not points:
        raise ValueError("Pareto plot: expected at least one point, got none")
    figure = Figure(figsize=(7, 5.5))
    axes = figure.subplots()
    families = sorted({point.family for point in points})
    singles = 0
    for family in families:
        members = _sweep_order([p for p in points if p.family == family])
        if len(members) > 1:
            axes.plot(
                [p.ts for p in members], [p.image_similarity for p in members], marker="o", label=plain_text(family)
            )
        else:
            marker = SINGLE_MARKERS[singles % len(SINGLE_MARKERS)]
            singles += 1
            axes.plot(
                [members[0].ts],
                [members[0].image_similarity],
                marker=marker,
                linestyle="none",
                label=plain_text(family),
            )
        for member in members:
            if member.label and member.label != family:
                axes.annotate(
                    plain_text(member.label), member.coordinates, textcoords="offset points", xytext=(5, 4), fontsize=7
                )
    front = pareto_front(points)
    axes.plot(
        [p.ts for p in front],
        [p.image_similarity for p in front],
        linestyle="none",
        marker="o",
        markersize=13,
        markerfacecolor="none",
        markeredgecolor="0.35",
        label="on the Pareto front",
        zorder=1,
    )
    _readable_axes(axes, points)
    axes.set_xlabel(f"{plain_text(ts_label)} (text similarity, higher is better)")
    axes.set_ylabel(f"{plain_text(is_label)} (subject similarity, higher is better)")
    if title:
        axes.set_title(plain_text(title))
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8, loc="best")
    figure.tight_layout()
    return figure


def plain_text(text: str) -> str:
    """Text that matplotlib draws as written: a pair of '$' would start mathtext, and a malformed
    formula such as '$\\frac$' raises while drawing. An escaped '\\$' is a literal dollar sign."""
    return str(text).replace("$", r"\$")


def _readable_axes(axes, points: list[SweepPoint]) -> None:
    """Limits with a margin, and tick labels as plain decimals with as many places as the span needs."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    for values, axis, set_limits in (
        ([p.ts for p in points], axes.xaxis, axes.set_xlim),
        ([p.image_similarity for p in points], axes.yaxis, axes.set_ylim),
    ):
        low, high = min(values), max(values)
        span = max(high - low, 0.01 * max(abs(high), 1e-3), 1e-4)
        set_limits(low - 0.08 * span, high + 0.08 * span)
        places = max(2, 1 - math.floor(math.log10(span / 5)))
        axis.set_major_locator(MaxNLocator(nbins=6))
        axis.set_major_formatter(FuncFormatter(lambda value, _position, places=places: f"{value:.{places}f}"))


def figure_bytes(figure, file_format: str) -> bytes:
    """A matplotlib figure as SVG (text kept as text), PNG or PDF."""
    import io

    import matplotlib

    if file_format not in FIGURE_FORMATS:
        raise ValueError(f"figure format: expected one of {', '.join(FIGURE_FORMATS)}, got {file_format!r}")
    buffer = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "pdf.fonttype": 42}):
        figure.savefig(buffer, format=file_format, dpi=150)
    return buffer.getvalue()


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
