"""studyapp.results.exports: win-rate table and raw answers as CSV / JSON; large exports stream."""

import csv
import io
import json
import time
import tracemalloc

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from studyapp.models import Answer, Pair, Rater
from studyapp.results import exports
from studyapp.results.pseudonyms import pseudonym
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
