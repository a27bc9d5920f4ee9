"""CSV and JSON exports of a study: the win-rate table and the raw answers.

Raw answers stream from the database in chunks (`QuerySet.iterator`), so an export of any size
never holds the whole table in memory. Raters appear only as pseudonyms (studyapp.results.pseudonyms).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from typing import Any

from django.http import HttpResponse, StreamingHttpResponse
from django.utils import timezone

from studyapp.models import QUESTIONS, Answer, Study
from studyapp.results.analysis import StudyResults
from studyapp.results.metrics import method_metric_summary
from studyapp.results.paper_tables import latex_table, markdown_table
from studyapp.results.pseudonyms import pseudonym
from studyapp.results.report import json_safe, result_rows, results_json

CHUNK_SIZE = 2000
FORMATS = ("csv", "json")
RESULT_FORMATS = (*FORMATS, "tex", "md")  # the win-rate table also as LaTeX (booktabs) and Markdown
PAPER_TABLES = {"tex": ("text/x-tex", latex_table), "md": ("text/markdown", markdown_table)}
ANSWER_COLUMNS = (
    "answer",
    "rater",
    "rater_excluded",
    "pair",
    "pair_kind",
    "in_overlap",
    "comparison",
    "method_a",
    "method_b",
    "concept",
    "prompt_id",
    "prompt",
    "seed_index",
    "text",
    "image",
    "overall",
    "left_is_a",
    "screen_text",
    "screen_image",
    "screen_overall",
    "response_ms",
    "submitted",
)
_ANSWER_FIELDS = (
    "id",
    "rater_id",
    "rater__excluded",
    "pair_id",
    "pair__kind",
    "pair__in_overlap",
    "pair__comparison_id",
    "pair__comparison__method_a__name",
    "pair__comparison__method_b__name",
    "pair__concept__slug",
    "pair__prompt_id",
    "pair__prompt__template",
    "pair__seed_index",
    "text",
    "image",
    "overall",
    "left_is_a",
    "screen_answers",
    "response_ms",
    "submitted",
)


class _Echo:
    """A file-like sink for csv.writer that hands each line back instead of storing it."""

    def write(self, value: str) -> str:
        return value


# A spreadsheet reads a cell starting with one of these as a formula (CSV injection), so such a text
# cell gets a leading apostrophe, which spreadsheets show as text and do not evaluate.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralised(value: Any) -> Any:
    """The cell as written to CSV: None as empty, formula-leading text prefixed with an apostrophe."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_lines(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> Iterator[str]:
    """Every CSV export goes through here, so every cell is neutralised."""
    writer = csv.writer(_Echo())
    yield writer.writerow([neutralised(name) for name in header])
    for row in rows:
        yield writer.writerow([neutralised(value) for value in row])


def check_format(file_format: str, allowed: tuple[str, ...] = FORMATS) -> str:
    if file_format not in allowed:
        raise ValueError(f"export format: expected one of {', '.join(allowed)}, got {file_format!r}")
    return file_format


def check_export(what: str, file_format: str) -> None:
    """Raises ValueError unless ``what.file_format`` is an export: results as csv/json/tex/md, answers as csv/json."""
    allowed = {"results": RESULT_FORMATS, "answers": FORMATS}
    if what not in allowed or file_format not in allowed[what]:
        raise ValueError(
            f"export {what}.{file_format}: expected results.{{{','.join(RESULT_FORMATS)}}} "
            f"or answers.{{{','.join(FORMATS)}}}"
        )


def _filename(study: Study, what: str, file_format: str) -> str:
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    return f"{study.slug}-v{study.version}-{what}-{stamp}.{file_format}"


def _attachment(response: HttpResponse | StreamingHttpResponse, name: str):
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


# ------------------------------------------------------------------------------- raw answers


def answer_rows(study: Study) -> Iterator[dict[str, Any]]:
    """Every answer of the study, oldest first, one dict per answer, read in chunks."""
    answers = Answer.objects.filter(pair__study=study).order_by("id").values_list(*_ANSWER_FIELDS)
    pseudonyms: dict[int, str] = {}
    for values in answers.iterator(chunk_size=CHUNK_SIZE):
        row = dict(zip(_ANSWER_FIELDS, values, strict=True))
        screen = row.pop("screen_answers") or {}
        rater = row["rater_id"]
        if rater not in pseudonyms:
            pseudonyms[rater] = pseudonym(rater)
        yield {
            "answer": row["id"],
            "rater": pseudonyms[rater],
            "rater_excluded": row["rater__excluded"],
            "pair": row["pair_id"],
            "pair_kind": row["pair__kind"],
            "in_overlap": row["pair__in_overlap"],
            "comparison": row["pair__comparison_id"],
            "method_a": row["pair__comparison__method_a__name"],
            "method_b": row["pair__comparison__method_b__name"],
            "concept": row["pair__concept__slug"],
            "prompt_id": row["pair__prompt_id"],
            "prompt": row["pair__prompt__template"],
            "seed_index": row["pair__seed_index"],
            "text": row["text"],
            "image": row["image"],
            "overall": row["overall"],
            "left_is_a": row["left_is_a"],
            **{f"screen_{q}": screen.get(q) for q in QUESTIONS},
            "response_ms": row["response_ms"],
            "submitted": row["submitted"].isoformat(),
        }


def _answers_json(study: Study) -> Iterator[str]:
    head = {
        "study": {"id": study.pk, "slug": study.slug, "version": study.version},
        "columns": {
            "rater": "pseudonym: HMAC of the rater id with the server's secret key, stable within this deployment",
            "text/image/overall": "method space: 'a' = method A chosen, 'b' = method B, 'tie' = can't decide",
            "screen_*": "what was clicked: '1' left, '2' right, '0' can't decide",
            "left_is_a": "method A's image was shown on the left",
            "response_ms": "from both images loaded to submit",
        },
    }
    yield json.dumps(head)[:-1] + ', "answers": ['
    separator = ""
    for row in answer_rows(study):
        yield separator + json.dumps(json_safe(row), allow_nan=False)
        separator = ",\n"
    yield "]}\n"


def answers_response(study: Study, file_format: str) -> StreamingHttpResponse:
    """Raw answers as a streamed CSV or JSON download."""
    if check_format(file_format) == "csv":
        rows = ([row[c] for c in ANSWER_COLUMNS] for row in answer_rows(study))
        response = StreamingHttpResponse(csv_lines(ANSWER_COLUMNS, rows), content_type="text/csv; charset=utf-8")
    else:
        response = StreamingHttpResponse(_answers_json(study), content_type="application/json")
    return _attachment(response, _filename(study, "answers", file_format))


# ------------------------------------------------------------------------------- the win-rate table


def results_rows(results: StudyResults) -> list[dict[str, Any]]:
    """Both analyses (with exclusions first, then all raters), one row per comparison x question."""
    return result_rows(results, results.primary, "with_exclusions") + result_rows(
        results, results.all_raters, "all_raters"
    )


def results_response(study: Study, results: StudyResults, file_format: str) -> HttpResponse:
    """The win-rate table (CSV: flat rows; JSON: the whole results with settings; tex / md: Table 1)."""
    if check_format(file_format, RESULT_FORMATS) in PAPER_TABLES:
        content_type, render = PAPER_TABLES[file_format]
        body = render(results, results.primary, method_metric_summary(_method_ids(results)))
        response = HttpResponse(body, content_type=f"{content_type}; charset=utf-8")
    elif file_format == "csv":
        rows = json_safe(results_rows(results))
        header = list(rows[0]) if rows else ["analysis", "comparison", "question"]
        body = "".join(csv_lines(header, ([row.get(c) for c in header] for row in rows)))
        response = HttpResponse(body, content_type="text/csv; charset=utf-8")
    else:
        body = json.dumps(results_json(study, results), allow_nan=False, indent=1)
        response = HttpResponse(body, content_type="application/json")
    return _attachment(response, _filename(study, "results", file_format))


def _method_ids(results: StudyResults) -> set[int]:
    return {m for c in results.comparisons for m in (c.method_a_id, c.method_b_id)}
