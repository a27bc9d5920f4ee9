"""studyapp.results.exports: win-rate table and raw answers as CSV / JSON; large exports stream."""

import csv
import io
import json
import shutil
import subprocess
import time
import tracemalloc

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from studyapp.models import Answer, Pair, Rater
from studyapp.results import exports
from studyapp.results.analysis import study_results
from studyapp.results.pseudonyms import pseudonym
from tests.conftest import need_service
from tests.results.factories import answer, study_with_answers

pytestmark = pytest.mark.django_db


def _body(response) -> str:
    return b"".join(response.streaming_content).decode() if response.streaming else response.content.decode()


def test_the_answers_csv_has_one_row_per_answer_in_method_and_screen_space(owner_client):
    study = study_with_answers(raters=0, methods=2)
    rater = Rater.objects.create(study=study, source="open", external_id="secret-prolific-id")
    pair = study.pairs.filter(kind=Pair.Kind.REGULAR).first()
    answer(rater, pair, "a", left_is_a=False, response_ms=2500, overall="tie").save()

    response = owner_client.get(f"/studies/{study.pk}/export/answers.csv")

    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(_body(response))))
    assert len(rows) == 1
    row = rows[0]
    assert row["rater"] == pseudonym(rater.pk)
    assert (row["text"], row["overall"], row["left_is_a"]) == ("a", "tie", "False")
    assert (row["screen_text"], row["screen_overall"]) == ("2", "0")  # A was on the right
    assert row["response_ms"] == "2500"
    assert row["method_a"] == pair.comparison.method_a.name
    body = _body(owner_client.get(f"/studies/{study.pk}/export/answers.csv"))
    assert "secret-prolific-id" not in body and f",{rater.pk}," not in body.split("\n", 1)[1][:20]


def test_the_answers_json_is_strict_json_with_the_same_rows(owner_client):
    study = study_with_answers(raters=2, methods=2)

    data = json.loads(_body(owner_client.get(f"/studies/{study.pk}/export/answers.json")))

    assert len(data["answers"]) == Answer.objects.filter(pair__study=study).count()
    assert set(data["answers"][0]) == set(exports.ANSWER_COLUMNS)
    assert data["study"]["id"] == study.pk


def test_the_results_csv_has_one_row_per_comparison_question_and_analysis_with_settings(owner_client):
    study = study_with_answers(raters=3, methods=3)

    response = owner_client.get(f"/studies/{study.pk}/export/results.csv?n_resamples=150&seed=4")

    rows = list(csv.DictReader(io.StringIO(_body(response))))
    assert len(rows) == 2 * 3 * 2  # two comparisons x three questions x (with exclusions, all raters)
    assert {r["analysis"] for r in rows} == {"with_exclusions", "all_raters"}
    first = rows[0]
    for column in (
        "win_rate",
        "ci_low",
        "ci_high",
        "tie_rate",
        "adjusted_p",
        "mark",
        "wins",
        "ties",
        "losses",
        "n",
        "sign_test_p",
        "excluded_raters",
        "data_hash",
        "setting_exclusion_rules",
    ):
        assert column in first
    assert (first["setting_n_resamples"], first["setting_seed"]) == ("150", "4")
    for column in ("adjusted_ci_low", "adjusted_ci_high", "interval_method", "testable", "note", "n_subjects"):
        assert column in first
    assert first["setting_procedure"] == "crossed" and first["setting_random_factors"] == "rater+prompt"


def _paper_table_study():
    study = study_with_answers(raters=5, methods=3)
    comparison = study.comparisons.order_by("position", "id").first()
    comparison.method_a.name = "Mixed_0.5 & 100%"  # characters LaTeX and Markdown must escape
    comparison.method_a.save()
    return study


def test_the_latex_table_is_a_booktabs_tabular_with_one_row_per_question():
    from pylatexenc.latexwalker import LatexEnvironmentNode, LatexWalker

    study = _paper_table_study()
    found = study_results(study, {"n_resamples": "100"})
    text = exports.results_response(study, found, "tex").content.decode()
    nodes, _, _ = LatexWalker(text).get_latex_nodes()
    (tabular,) = [n for n in nodes if isinstance(n, LatexEnvironmentNode)]
    assert tabular.environmentname == "tabular"
    body = tabular.latex_verbatim()
    rows = [line for line in body.splitlines() if line.rstrip().endswith(r"\\")]
    assert len(rows) == 1 + 3 + 3  # header, three questions, three metrics
    assert all(line.count(" & ") == 2 for line in rows)  # question + two comparisons, no stray &
    assert r"Mixed\_0.5 \& 100\%" in rows[0]
    for rule in (r"\toprule", r"\midrule", r"\bottomrule"):
        assert rule in body
    assert text.startswith("% Decisive win rate of A")  # the legend travels with the table


def test_the_latex_table_compiles_as_a_fragment(tmp_path):
    if shutil.which("pdflatex") is None:
        need_service("TeX (apt-get install texlive-latex-base texlive-latex-recommended)")
    study = _paper_table_study()
    fragment = exports.results_response(study, study_results(study, {"n_resamples": "100"}), "tex").content
    (tmp_path / "table.tex").write_bytes(fragment)
    (tmp_path / "paper.tex").write_text(
        "\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n\\input{table}\n\\end{document}\n"
    )
    completed = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "paper.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stdout[-2000:]
    assert (tmp_path / "paper.pdf").stat().st_size > 1000


def test_the_markdown_table_parses_into_a_table_with_every_cell():
    from markdown_it import MarkdownIt

    study = _paper_table_study()
    text = exports.results_response(study, study_results(study, {"n_resamples": "100"}), "md").content.decode()
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    kinds = [t.type for t in tokens]
    assert kinds.count("table_open") == 1
    assert kinds.count("th_open") == 3 and kinds.count("td_open") == (3 + 3) * 3
    cells = [t.content for t in tokens if t.type == "inline"]
    assert cells[1] == "Mixed_0.5 & 100% vs " + study.comparisons.order_by("position", "id").first().method_b.name
    assert any("Decisive win rate of A" in c for c in cells)  # the legend paragraph under the table


def test_the_paper_tables_are_downloads_like_the_other_exports(owner_client):
    study = study_with_answers(raters=3, methods=2)
    for extension, kind in (("tex", "text/x-tex"), ("md", "text/markdown")):
        response = owner_client.get(f"/studies/{study.pk}/export/results.{extension}?n_resamples=100")
        assert response.status_code == 200 and response["Content-Type"].startswith(kind)
        assert response["Content-Disposition"].endswith(f'.{extension}"')
    assert owner_client.get(f"/studies/{study.pk}/export/answers.tex").status_code == 404


def test_the_results_json_holds_settings_exclusions_and_both_analyses(owner_client):
    study = study_with_answers(raters=3, methods=2)
    Rater.objects.filter(pk=Rater.objects.filter(study=study).first().pk).update(excluded=True)

    data = json.loads(owner_client.get(f"/studies/{study.pk}/export/results.json?n_resamples=100").content)

    assert data["settings"]["n_resamples"] == 100
    assert data["exclusions"]["excluded_raters"] == 1 and data["exclusions"]["excluded_by_hand"] == 1
    assert len(data["with_exclusions"]["rows"]) == len(data["all_raters"]["rows"]) == 3
    assert data["with_exclusions"]["rows"][0]["n"] < data["all_raters"]["rows"][0]["n"]


@pytest.mark.slow
def test_an_export_of_100k_answers_streams_completely_in_chunks(owner_client):
    study = study_with_answers(raters=0, methods=2)
    template = study.pairs.filter(kind=Pair.Kind.REGULAR).first()
    pairs = Pair.objects.bulk_create(
        Pair(
            study=study,
            comparison=template.comparison,
            image_a=template.image_a,
            image_b=template.image_b,
            concept=template.concept,
            prompt=template.prompt,
            seed_index=i,
        )
        for i in range(250)
    )
    raters = Rater.objects.bulk_create(Rater(study=study, source="open", external_id=f"bulk{i}") for i in range(400))
    screen = {"text": "1", "image": "2", "overall": "0"}
    Answer.objects.bulk_create(
        (
            Answer(
                rater=r,
                pair=p,
                text="a",
                image="b",
                overall="tie",
                left_is_a=True,
                screen_answers=screen,
                response_ms=3000,
            )
            for r in raters
            for p in pairs
        ),
        batch_size=5000,
    )
    response = owner_client.get(f"/studies/{study.pk}/export/answers.csv")

    started = time.perf_counter()
    tracemalloc.start()
    with CaptureQueriesContext(connection) as queries:
        lines = sum(chunk.count(b"\n") for chunk in response.streaming_content)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    assert lines == 100_000 + 1
    # the whole export as Python rows would take hundreds of MB; chunks keep the peak small
    assert peak < 40 * 1024 * 1024, f"peak {peak / 1e6:.0f} MB"
    if connection.vendor == "sqlite":
        assert len(queries) == 1  # one cursor, read in chunks of CHUNK_SIZE
    print(f"100k answers exported in {time.perf_counter() - started:.1f} s, peak {peak / 1e6:.1f} MB")
