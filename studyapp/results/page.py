"""The results page's parts: numbers formatted for reading, the Table-1 layout, the chart's geometry, the
ranking, agreement and rater-quality tables."""

from __future__ import annotations

import math
from typing import Any

from studyapp.models import QUESTIONS
from studyapp.results.analysis import StudyResults
from studyapp.results.metrics import METRIC_LABELS, SHOWN_METRICS
from studyapp.results.pseudonyms import pseudonym

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


def pvalue(value, floor: float = 0.0) -> str:
    """Three decimals, "<0.001" below that; at a resampling procedure's floor, "< floor"."""
    if not _finite(value):
        return "–"
    if floor and value <= floor:
        return f"< {floor:.2g}"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def number(value, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if _finite(value) else "–"


def interval_of(ci, digits: int = 3) -> str:
    return f"[{number(ci.low, digits)}, {number(ci.high, digits)}]"


# ------------------------------------------------------------------------------- page parts


def table_one(study_results: StudyResults, analysis, metrics: dict) -> dict[str, Any]:
    """Rows: the three questions, then the metrics of A and B; columns: comparisons."""
    columns = list(study_results.comparisons)
    rows = []
    for question_id, question in enumerate(QUESTIONS):
        cells = [cell(analysis.row(comparison.pk, question_id)) for comparison in columns]
        rows.append({"question": question, "cells": cells})
    metric_rows = []
    for metric in SHOWN_METRICS:
        cells = []
        for comparison in columns:
            a = metrics.get(comparison.method_a_id, {}).get(metric)
            b = metrics.get(comparison.method_b_id, {}).get(metric)
            cells.append({"a": number(a["mean"]) if a else "–", "b": number(b["mean"]) if b else "–"})
        metric_rows.append({"metric": METRIC_LABELS[metric], "cells": cells})
    return {"columns": columns, "rows": rows, "metric_rows": metric_rows}


def cell(row) -> dict[str, Any]:
    """One comparison x question: the estimate, its marginal and adjusted intervals, p-values, the mark,
    and why a cell is not tested or what its interval fell back to."""
    e = row.estimate
    return {
        "win_rate": percent(e.win_rate),
        "interval": interval(e.win_rate_ci.low, e.win_rate_ci.high),
        "adjusted_interval": interval(row.adjusted_ci.low, row.adjusted_ci.high),
        "adjusted_level": f"{100 * row.adjusted_level:.2f}%" if _finite(row.adjusted_level) else "",
        "interval_method": e.interval_method,
        "n": e.n,
        "wins": e.wins,
        "ties": e.ties,
        "losses": e.losses,
        "tie_rate": percent(e.tie_rate),
        "p": pvalue(e.pvalue, e.pvalue_floor),
        "adjusted_p": pvalue(row.adjusted_pvalue, row.adjusted_pvalue if row.pvalue_is_floor else 0.0),
        "mark": row.mark,
        "tested": e.testable,
        "note": row.note,
        "warnings": [w for w in e.warnings if not w.startswith("too few") and w != "no decided answers"],
        "clusters": f"{e.n_raters} raters, {e.n_subjects} subjects, {e.n_prompts} prompts",
    }


def metric_difference_rows(study_results: StudyResults) -> list[dict[str, Any]]:
    return [
        {
            "label": row["label"],
            "metric": METRIC_LABELS.get(row["metric"], row["metric"]),
            "a": number(row["mean_a"], 4),
            "b": number(row["mean_b"], 4),
            "difference": number(row["difference"], 4),
            "interval": f"[{number(row['ci_low'], 4)}, {number(row['ci_high'], 4)}]",
            "p": pvalue(row["pvalue"]),
            "n": row["n"],
            "levels": f"{row['n_subjects']} subjects, {row['n_prompts']} prompts",
            "warnings": row["warnings"],
        }
        for row in study_results.computed.metric_differences
    ]


def breakdown_rows(study_results: StudyResults, by: str) -> list[dict[str, Any]]:
    """Exploratory per-subject (or per-prompt) rows, with Benjamini-Hochberg q-values and no marks."""
    return [
        {
            "label": row["label"],
            "question": QUESTIONS[row["question"]],
            "name": row["name"],
            "win_rate": percent(row["win_rate"]),
            "interval": interval(*row["win_rate_ci"]),
            "interval_method": row["interval_method"],
            "n": row["wins"] + row["ties"] + row["losses"],
            "counts": f"{row['wins']}/{row['ties']}/{row['losses']}",
            "q": pvalue(row["qvalue"]),
            "warnings": row["warnings"],
        }
        for row in study_results.computed.breakdowns[by]
    ]


def _x(value: float) -> float:
    return round(PANEL_WIDTH * min(max(value, 0.0), 1.0), 2)


def win_rate_chart(study_results: StudyResults, analysis) -> dict[str, Any]:
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
        bars.append(
            {
                "label": f"{row.label} · {QUESTIONS[row.question]}",
                "y": y,
                "mid": y + ROW_HEIGHT / 2 - 2,
                "segments": segments,
                "point": point,
                "mark": row.mark,
                "summary": f"W {e.wins} / T {e.ties} / L {e.losses}; win rate {percent(e.win_rate)} "
                f"{interval(e.win_rate_ci.low, e.win_rate_ci.high)}",
            }
        )
    panel_b = LABEL_WIDTH + PANEL_WIDTH + GAP
    height = TOP + max(len(bars), 1) * ROW_HEIGHT + 30
    ticks = [{"value": f"{t:g}", "x": _x(t)} for t in (0, 0.25, 0.5, 0.75, 1)]
    return {
        "bars": bars,
        "width": panel_b + PANEL_WIDTH + 20,
        "height": height,
        "label_width": LABEL_WIDTH,
        "panel_width": PANEL_WIDTH,
        "panel_b": panel_b,
        "half": _x(0.5),
        "ticks": ticks,
        "axis_y": height - 26,
        "bar_height": ROW_HEIGHT - 8,
        "level": f"{100 * study_results.settings.confidence_level:g}%",
    }


def bradley_terry_tables(analysis, method_names: dict[int, str]) -> list[dict[str, Any]]:
    tables = []
    for question_id, fit in sorted(analysis.bradley_terry.items()):
        ranking = [
            {
                "rank": r["rank"],
                "method": method_names.get(r["method"], r["method"]),
                "score": number(r["score"]),
                "interval": f"[{number(r['ci_low'])}, {number(r['ci_high'])}]",
            }
            for r in fit.ranking()
        ]
        tables.append(
            {
                "question": QUESTIONS[question_id],
                "ranking": ranking,
                "left_advantage": number(fit.left_advantage),
                "left_interval": interval_of(fit.left_advantage_ci),
                "converged": fit.converged,
                "failed": fit.failed_resamples,
            }
        )
    return tables


def rater_quality_rows(study_results: StudyResults, analysis) -> list[dict[str, Any]]:
    reasons = study_results.exclusion_reasons()
    rows = []
    for row in analysis.rater_quality.rows():
        rater = int(row["raters"])
        rows.append(
            {
                "rater": rater,
                "pseudonym": pseudonym(rater),
                "answers": row["n_pairs"],
                "gold": f"{row['gold_correct']}/{row['gold_answers']}" if row["gold_answers"] else "–",
                "gold_accuracy": percent(row["gold_accuracy"]),
                "attention": f"{row['attention_failures']}/{row['attention_checks']}"
                if row["attention_checks"]
                else "–",
                "median_time": f"{row['median_time_ms'] / 1000:.1f} s" if _finite(row["median_time_ms"]) else "–",
                "left_share": percent(row["left_share"]),
                "left_p": pvalue(row["left_pvalue"]),
                "reasons": reasons.get(rater, []),
            }
        )
    return rows


def agreement_rows(analysis) -> list[dict[str, Any]]:
    rows = []
    for question_id, found in sorted(analysis.agreement.items()):
        rows.append(
            {
                "question": QUESTIONS[question_id],
                "units": found.n_units,
                "answers": found.n_answers,
                "raw": percent(found.raw_agreement),
                "kappa": number(found.fleiss_kappa),
                "alpha": number(found.krippendorff_alpha),
                "alpha_interval": interval_of(found.krippendorff_alpha_ci),
            }
        )
    return rows
