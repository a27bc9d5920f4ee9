"""The results page's figures as files: the win-rate chart and the Pareto plot, each as SVG, PNG or PDF.

The page draws the win-rate chart inline (results_chart.html); the downloads redraw the same numbers with
matplotlib, so all three formats come from one drawing.
"""

from __future__ import annotations

import math

from studyapp.models import QUESTIONS, Study
from studyapp.results.analysis import StudyResults
from studyapp.results.metrics import pareto_points, study_methods
from studyapp.results.page import STACK_COLOURS

FIGURE_NAMES = ("win-rates", "pareto")
CONTENT_TYPES = {"svg": "image/svg+xml", "png": "image/png", "pdf": "application/pdf"}


class FigureUnavailable(Exception):
    """A figure that cannot be drawn yet (no answers, no metrics); the message says why."""


def check_figure(name: str, file_format: str) -> None:
    if name not in FIGURE_NAMES:
        raise ValueError(f"figure {name!r}: expected one of {', '.join(FIGURE_NAMES)}")
    if file_format not in CONTENT_TYPES:
        raise ValueError(f"figure format {file_format!r}: expected one of {', '.join(CONTENT_TYPES)}")


def figure_file(study: Study, name: str, file_format: str, results: StudyResults | None = None) -> bytes:
    """The named figure of the study in the format; `results` is needed for the win-rate chart."""
    from generation.pareto import figure_bytes, pareto_figure

    check_figure(name, file_format)
    if name == "pareto":
        points = pareto_points(study_methods(study))
        if not points:
            raise FigureUnavailable(f"study {study.slug}: no method has both CLIP-TS and CLIP-IS yet")
        figure = pareto_figure(points, title=study.title)
    else:
        figure = win_rate_figure(results, title=study.title)
    return figure_bytes(figure, file_format)


def win_rate_figure(results: StudyResults, title: str = ""):
    """Left: wins / ties / losses as shares of the answers; right: the decisive win rate with its interval."""
    from matplotlib.figure import Figure

    rows = list(results.primary.rows)
    if not rows:
        raise FigureUnavailable("no comparison has answers yet")
    level = f"{100 * results.settings.confidence_level:g}%"
    figure = Figure(figsize=(9, 1.2 + 0.38 * len(rows)))
    shares, rates = figure.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [1, 1]})
    labels = [f"{row.label} · {QUESTIONS[row.question]}" for row in rows]
    positions = list(range(len(rows)))[::-1]
    _stacked_shares(shares, rows, positions)
    _win_rates(rates, rows, positions)
    shares.set_yticks(positions, labels, fontsize=8)
    shares.set_title("Wins / ties / losses (share of answers)", fontsize=9)
    rates.set_title(f"Decisive win rate of A, {level} interval", fontsize=9)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure


def _stacked_shares(axes, rows, positions) -> None:
    for position, row in zip(positions, rows, strict=True):
        e = row.estimate
        start = 0.0
        for name, count in (("wins", e.wins), ("ties", e.ties), ("losses", e.losses)):
            share = count / e.n if e.n else 0.0
            axes.barh(position, share, left=start, color=STACK_COLOURS[name], height=0.7, label=name)
            start += share
    handles, names = axes.get_legend_handles_labels()
    unique = dict(zip(names, handles, strict=True))
    axes.legend(unique.values(), ["A wins", "can't decide", "B wins"], fontsize=7, loc="lower right")
    _percent_axis(axes)


def _win_rates(axes, rows, positions) -> None:
    axes.axvline(0.5, color="0.55", linestyle="--", linewidth=1)
    for position, row in zip(positions, rows, strict=True):
        e = row.estimate
        if not _finite(e.win_rate):
            continue
        low, high = e.win_rate_ci.low, e.win_rate_ci.high
        if _finite(low) and _finite(high):
            axes.errorbar(
                e.win_rate,
                position,
                xerr=[[e.win_rate - low], [high - e.win_rate]],
                fmt="o",
                color="#2457c5",
                ecolor="#1b1b1f",
                capsize=3,
            )
        else:
            axes.plot(e.win_rate, position, "o", color="#2457c5")
        if row.mark:
            axes.annotate(row.mark, (1.0, position), xytext=(4, -3), textcoords="offset points", fontsize=8)
    _percent_axis(axes)


def _percent_axis(axes) -> None:
    from matplotlib.ticker import PercentFormatter

    axes.set_xlim(0, 1)
    axes.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    axes.grid(True, axis="x", alpha=0.3)


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
