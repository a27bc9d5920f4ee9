"""The results side of the admin: exports, snapshots and exclusion rules as study actions."""

import pytest
from django.urls import reverse

from studyapp.models import AnalysisSnapshot, Rater
from tests.results.factories import answer, gold_pair, study_with_answers

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_bootstrap(settings):
    settings.RESULTS_BOOTSTRAP_RESAMPLES = 200


@pytest.fixture
def study():
    return study_with_answers(raters=4, methods=3)


def _admin_action(client, action: str, studies):
    return client.post(
        reverse("admin:studyapp_study_changelist"),
        {"action": action, "_selected_action": [s.pk for s in studies]},
    )


def test_the_admin_exports_one_study(owner_client, study):
    response = _admin_action(owner_client, "export_answers_csv", [study])
    lines = b"".join(response.streaming_content).decode().strip().splitlines()
    assert len(lines) == 1 + 4 * 16
    response = _admin_action(owner_client, "export_results_json", [study])
    assert response.status_code == 200 and b'"with_exclusions"' in response.content


def test_the_admin_snapshot_and_rules_actions(owner_client):
    study = study_with_answers(raters=2, methods=2, exclusion_rules={"min_gold_accuracy": 0.5})
    careless = Rater.objects.filter(study=study).first()
    answer(careless, gold_pair(study, {"text": "a"}), "b").save()

    _admin_action(owner_client, "apply_exclusion_rules_action", [study])
    _admin_action(owner_client, "snapshot_action", [study])

    careless.refresh_from_db()
    assert careless.excluded and "min_gold_accuracy" in careless.exclusion_reason
    snapshot = AnalysisSnapshot.objects.get(study=study)
    assert snapshot.results["exclusions"]["excluded_raters"] == 1


def test_the_study_admin_links_to_the_results_page(owner_client, study):
    results_url = reverse("study-results", args=[study.pk])
    assert results_url in owner_client.get(reverse("admin:studyapp_study_changelist")).content.decode()
    assert results_url in owner_client.get(reverse("admin:studyapp_study_change", args=[study.pk])).content.decode()
