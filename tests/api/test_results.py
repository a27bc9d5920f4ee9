"""The results API (studyapp.api.results, studies): staff only; studies, comparisons, results, exports, snapshots."""

import json

import pytest
from rest_framework.authtoken.models import Token

from studyapp.models import AnalysisSnapshot
from tests.results.factories import add_answers, study_with_answers

pytestmark = pytest.mark.django_db


@pytest.fixture
def study():
    return study_with_answers(raters=3, methods=3)


def api_urls(study, snapshot) -> list[str]:
    return [
        "/api/schema/",
        "/api/studies/",
        f"/api/studies/{study.pk}/",
        f"/api/studies/{study.pk}/comparisons/",
        f"/api/studies/{study.pk}/results/?n_resamples=50",
        f"/api/studies/{study.pk}/export/results.csv?n_resamples=50",
        f"/api/studies/{study.pk}/export/results.json?n_resamples=50",
        f"/api/studies/{study.pk}/export/answers.csv",
        f"/api/studies/{study.pk}/export/answers.json",
        f"/api/studies/{study.pk}/snapshots/",
        f"/api/snapshots/{snapshot.pk}/",
    ]


@pytest.fixture
def snapshot(study):
    return AnalysisSnapshot.objects.create(study=study, data_hash="0" * 64, results={"frozen": True})


def test_the_owner_reaches_every_endpoint(owner_client, study, snapshot):
    for url in api_urls(study, snapshot):
        assert owner_client.get(url).status_code == 200, url


@pytest.mark.parametrize("persona", ["outsider", "anonymous"])
def test_outsiders_and_anonymous_visitors_reach_no_endpoint(client, django_user_model, persona, study, snapshot):
    # raters are anonymous visitors too: their pages never log them in as users
    if persona == "outsider":
        client.force_login(django_user_model.objects.create_user("someone", password="pass-1234567"))
    for url in api_urls(study, snapshot):
        assert client.get(url).status_code in (401, 403), url
    assert client.post(f"/api/studies/{study.pk}/snapshots/", {"label": "x"}).status_code in (401, 403)
    assert not AnalysisSnapshot.objects.filter(label="x").exists()


def test_a_token_authenticates_a_staff_user(client, owner, study):
    token = Token.objects.create(user=owner)
    response = client.get("/api/studies/", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 200
    assert client.get("/api/studies/", HTTP_AUTHORIZATION="Token wrong").status_code in (401, 403)


def test_studies_list_their_comparisons_by_method_name(owner_client, study):
    data = owner_client.get("/api/studies/").json()
    listed = next(s for s in data if s["id"] == study.pk)
    names = [(c["method_a"], c["method_b"]) for c in listed["comparisons"]]
    expected = [(c.method_a.name, c.method_b.name) for c in study.comparisons.order_by("position")]
    assert names == expected


def test_results_match_the_export_and_echo_the_settings(owner_client, study):
    query = "?n_resamples=80&seed=3&ties=davidson"
    data = owner_client.get(f"/api/studies/{study.pk}/results/{query}").json()
    exported = json.loads(owner_client.get(f"/api/studies/{study.pk}/export/results.json{query}").content)
    assert data["settings"]["n_resamples"] == 80 and data["settings"]["ties"] == "davidson"
    assert data["with_exclusions"]["rows"] == exported["with_exclusions"]["rows"]
    assert len(data["with_exclusions"]["rows"]) == 6


def test_bad_settings_are_a_400_naming_the_setting(owner_client, study):
    response = owner_client.get(f"/api/studies/{study.pk}/results/?confidence_level=2")
    assert response.status_code == 400
    assert "confidence_level" in response.json()["detail"]
    response = owner_client.get(f"/api/studies/{study.pk}/results/?n_resamples=0")
    assert response.status_code == 400 and "n_resamples: expected 1 to 20000" in response.json()["detail"]


def test_results_say_which_procedure_and_factors_gave_them(owner_client, study):
    data = owner_client.get(f"/api/studies/{study.pk}/results/?n_resamples=80").json()
    assert data["settings"]["procedure"] == "crossed" and data["settings"]["fixed_factors"] == ["subject"]
    assert data["settings"]["random_factors"] == ["rater", "prompt"]
    analysis = data["with_exclusions"]
    assert "crossed random-factor variance" in analysis["procedure"] and analysis["tests_in_family"] == 6
    row = analysis["rows"][0]
    assert row["interval_method"] == "crossed" and row["testable"] is True
    assert row["adjusted_ci_low"] <= row["ci_low"] <= row["ci_high"] <= row["adjusted_ci_high"]
    assert set(data["breakdowns"]) == {"subject", "prompt"} and data["metric_differences"] == []


def test_an_api_snapshot_freezes_the_settings_of_its_query(owner_client, study):
    created = owner_client.post(f"/api/studies/{study.pk}/snapshots/?procedure=bootstrap&n_resamples=400", {})
    assert created.status_code == 201
    assert created.json()["settings"]["procedure"] == "bootstrap" and created.json()["settings"]["n_resamples"] == 400


def test_an_export_ignores_the_accept_header(owner_client, study):
    response = owner_client.get(f"/api/studies/{study.pk}/export/answers.csv", HTTP_ACCEPT="text/csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert owner_client.get(f"/api/studies/{study.pk}/export/answers.xml").status_code == 404


def test_a_snapshot_made_through_the_api_is_returned_unchanged_later(owner_client, study):
    created = owner_client.post(f"/api/studies/{study.pk}/snapshots/", {"label": "submitted version"})
    assert created.status_code == 201
    body = created.json()
    assert body["matches_current_data"] is True and body["label"] == "submitted version"

    add_answers(study, raters=2, a_wins=0.05, name_prefix="late", seed=9)

    later = owner_client.get(f"/api/snapshots/{body['id']}/").json()
    assert later["results"] == body["results"]
    assert later["data_hash"] == body["data_hash"]
    assert later["matches_current_data"] is False
    listed = owner_client.get(f"/api/studies/{study.pk}/snapshots/").json()
    assert [s["id"] for s in listed] == [body["id"]] and "results" not in listed[0]


def test_the_schema_describes_the_results_endpoints(owner_client):
    schema = owner_client.get("/api/schema/?format=json").json()
    for path in (
        "/api/studies/",
        "/api/studies/{id}/results/",
        "/api/studies/{id}/snapshots/",
        "/api/snapshots/{id}/",
        "/api/studies/{id}/export/{what}.{file_format}",
    ):
        assert path in schema["paths"], path
    parameters = {p["name"] for p in schema["paths"]["/api/studies/{id}/results/"]["get"]["parameters"]}
    assert {"procedure", "random_factors", "multiplicity", "n_resamples", "seed"} <= parameters
    assert not {"test", "cluster"} & parameters  # retired: a link carrying them is refused


def test_the_schema_validates_without_warnings(tmp_path):
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml"))
    assert "/api/studies/{id}/results/" in (tmp_path / "schema.yml").read_text()
