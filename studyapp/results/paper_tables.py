"""The win-rate table in the layout of the paper's Table 1, as LaTeX (booktabs) and as Markdown.

Rows are the questions, then the automatic metrics of A and B; columns are the comparisons. A cell
reads "61.2%* [55.0, 67.1]": the decisive win rate of A, its mark, and its marginal interval. A
cell that is not tested says so instead of carrying a mark. The legend under the table names the
procedure that produced the numbers, so a pasted table cannot lose it.
"""

from __future__ import annotations

import math

from studyapp import stats
from studyapp.models import QUESTIONS
from studyapp.results.analysis import StudyResults
from studyapp.results.metrics import METRIC_LABELS, SHOWN_METRICS

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(char, char) for char in str(text))


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _percent(value) -> str:
    return f"{100 * value:.1f}%" if _finite(value) else "–"


def _interval(ci) -> str:
    return f"[{100 * ci.low:.1f}, {100 * ci.high:.1f}]" if _finite(ci.low) and _finite(ci.high) else ""


def _metric_means(metrics: dict, comparison) -> list[str]:
    cells = []
    for metric in SHOWN_METRICS:
        a = metrics.get(comparison.method_a_id, {}).get(metric)
        b = metrics.get(comparison.method_b_id, {}).get(metric)
        cells.append(f"{a['mean']:.3f} / {b['mean']:.3f}" if a and b else "–")
    return cells


def _cells(results: StudyResults, analysis: stats.AnalysisResult) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """(question, [(win rate, mark, interval or 'not tested')]) per row."""
    rows = []
    for question_id, question in enumerate(QUESTIONS):
        cells = []
        for comparison in results.comparisons:
            row = analysis.row(comparison.pk, question_id)
            detail = _interval(row.estimate.win_rate_ci)
            if not row.estimate.testable:
                detail = f"{detail} not tested".strip()
            cells.append((_percent(row.estimate.win_rate), row.mark, detail))
        rows.append((question, cells))
    return rows


def legend(analysis: stats.AnalysisResult) -> str:
    return (
        f"{analysis.procedure} Marks: * adjusted p < α, ** < α/5, *** < α/50. "
        f"Metric rows: mean of A's images / mean of B's images."
    )


def latex_table(results: StudyResults, analysis: stats.AnalysisResult, metrics: dict) -> str:
    """A booktabs tabular (a fragment for \\input), with the legend as a comment above it."""
    columns = results.comparisons
    header = " & ".join(
        ["Question"] + [f"{latex_escape(c.method_a.name)} vs {latex_escape(c.method_b.name)}" for c in columns]
    )
    lines = [f"% {line}" for line in _wrap(legend(analysis))]
    lines += [rf"\begin{{tabular}}{{l{'c' * len(columns)}}}", r"\toprule", header + r" \\", r"\midrule"]
    for question, cells in _cells(results, analysis):
        rendered = [
            latex_escape(rate) + (rf"$^{{{mark}}}$" if mark else "") + (f" {latex_escape(detail)}" if detail else "")
            for rate, mark, detail in cells
        ]
        lines.append(" & ".join([latex_escape(question), *rendered]) + r" \\")
    lines.append(r"\midrule")
    for index, metric in enumerate(SHOWN_METRICS):
        means = [_metric_means(metrics, c)[index] for c in columns]
        lines.append(" & ".join([f"{latex_escape(METRIC_LABELS[metric])} (A / B)", *means]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(lines)


def markdown_table(results: StudyResults, analysis: stats.AnalysisResult, metrics: dict) -> str:
    """A pipe table with the legend as a paragraph under it."""
    columns = results.comparisons
    header = ["Question"] + [f"{_md(c.method_a.name)} vs {_md(c.method_b.name)}" for c in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join([" --- "] + [" :-: "] * len(columns)) + "|"]
    for question, cells in _cells(results, analysis):
        rendered = [
            _md(rate) + (f"<sup>{mark}</sup>" if mark else "") + (f" {detail}" if detail else "")
            for rate, mark, detail in cells
        ]
        lines.append("| " + " | ".join([question, *rendered]) + " |")
    for index, metric in enumerate(SHOWN_METRICS):
        means = [_metric_means(metrics, c)[index] for c in columns]
        lines.append("| " + " | ".join([f"{METRIC_LABELS[metric]} (A / B)", *means]) + " |")
    return "\n".join([*lines, "", _md(legend(analysis)), ""])


def _md(text: str) -> str:
    """Cell text that cannot break the table: pipes escaped, markup characters left to the reader."""
    return str(text).replace("|", r"\|").replace("*", r"\*")


def _wrap(text: str, width: int = 100) -> list[str]:
    lines, current = [], ""
    for word in text.split():
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}".strip()
    return [*lines, current] if current else lines
