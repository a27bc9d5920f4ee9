"""The runs API: staff only, validated before queueing, actions from the same table as the run page."""

import json
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from studyapp.models import GeneratedImage, GenerationBatch, GenerationRun, Method, Sweep
from tests import factories
from tests.runs.factories import FAST_STEPS, runs_with_images, small_run

pytestmark = pytest.mark.django_db


def spec(**overrides):
    method = factories.method(sampler="mixed")
    body = {
        "method": method.name,
        "prompt_set": factories.prompt_set().slug,
        "concepts": [factories.concept().slug],
        "seed_indices": [0, 1],
        "steps": FAST_STEPS,
        "label": "api run",
    }
    body.update(overrides)
    return body


def test_the_api_refuses_non_staff(client, outsider):
    client.force_login(outsider)
    assert client.get(reverse("api-run-list")).status_code == 403
    assert client.post(reverse("api-run-list"), {}, content_type="application/json").status_code == 403


# ---------------------------------------------------------------- API


def test_api_creates_and_queues_a_valid_run(owner_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as sent:
        response = owner_client.post(reverse("api-run-list"), spec(), content_type="application/json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["state"] == "queued" and body["images_total"] == 4 and body["params"]["w_s"] == 3.5
    assert body["progress"]["total"] == 4 and len(sent) == 2
    detail = owner_client.get(reverse("api-run-detail", args=[body["id"]])).json()
    assert detail["progress"]["state"] == "queued"


@pytest.mark.django_db(transaction=True)
def test_without_a_broker_a_run_posted_to_the_api_is_generated_in_the_background(owner_client, settings, tiny_model):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    response = owner_client.post(reverse("api-run-list"), spec(seed_indices=[0]), content_type="application/json")
    assert response.status_code == 201, response.content
    run_id = response.json()["id"]
    deadline = time.monotonic() + 120
    while GenerationRun.objects.get(pk=run_id).state != "done":
        assert time.monotonic() < deadline, "the background generation did not finish"
        time.sleep(0.2)
    assert GeneratedImage.objects.filter(run_id=run_id).count() == 2


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"seed_indices": []}, "seed_indices"),
        ({"seed_indices": [-1]}, "seed_indices"),
        ({"steps": 0}, "steps"),
        ({"concepts": []}, "concepts"),
    ],
)
def test_api_refuses_an_invalid_run_and_queues_nothing(
    owner_client, django_capture_on_commit_callbacks, overrides, field
):
    with django_capture_on_commit_callbacks() as sent:
        response = owner_client.post(reverse("api-run-list"), spec(**overrides), content_type="application/json")
    assert response.status_code == 400 and field in response.json()
    assert (sent, GenerationRun.objects.count()) == ([], 0)


def test_api_refuses_an_external_method(owner_client):
    external = factories.method(kind=Method.Kind.EXTERNAL)
    response = owner_client.post(reverse("api-run-list"), spec(method=external.name), content_type="application/json")
    assert response.status_code == 400 and "external" in json.dumps(response.json())


def test_api_actions_cancel_resume_and_requeue(owner_client, django_capture_on_commit_callbacks):
    run = small_run(templates=("a {concept} in the snow", "a {concept} on the beach"))
    response = owner_client.post(reverse("api-run-action", args=[run.pk, "cancel"]))
    assert response.json()["progress"]["state"] == "cancelled"
    first = run.batches.first()
    GenerationBatch.objects.filter(pk=first.pk).update(state="failed", error="boom")
    with django_capture_on_commit_callbacks() as sent:
        response = owner_client.post(reverse("api-run-action", args=[run.pk, "requeue-failed"]))
    assert response.json()["queued_batches"] == 1 and len(sent) == 1
    assert owner_client.post(reverse("api-run-action", args=[run.pk, "nope"])).status_code == 404


def test_api_sweep_creates_one_run_per_preset_point(owner_client, django_capture_on_commit_callbacks):
    presets = owner_client.get(reverse("api-sweep-presets")).json()
    body = {
        "name": "api-sweep",
        "sampler": "masked",
        "preset": "masked",
        "prompt_set": factories.prompt_set().slug,
        "concepts": [factories.concept().slug],
        "seed_indices": [0],
        "steps": FAST_STEPS,
    }
    with django_capture_on_commit_callbacks() as sent:
        response = owner_client.post(reverse("api-sweep-list"), body, content_type="application/json")
    assert response.status_code == 201, response.content
    assert len(response.json()["runs"]) == len(presets["masked"]) == len(sent) / 2


def test_api_refuses_an_invalid_sweep_and_keeps_nothing(owner_client):
    body = {
        "name": "bad",
        "sampler": "mixed",
        "grid": [{"w_s": 1.0}, {"w_s": -5.0}],
        "prompt_set": factories.prompt_set().slug,
        "concepts": [factories.concept().slug],
        "seed_indices": [0],
        "steps": FAST_STEPS,
    }
    response = owner_client.post(reverse("api-sweep-list"), body, content_type="application/json")
    assert response.status_code == 400 and "w_s" in json.dumps(response.json())
    assert (Sweep.objects.count(), GenerationRun.objects.count()) == (0, 0)


def test_the_run_list_makes_as_many_queries_for_ten_runs_as_for_one(owner_client):
    def queries_for_the_list() -> int:
        with CaptureQueriesContext(connection) as queries:
            body = owner_client.get(reverse("api-run-list")).json()
        assert len(body) == GenerationRun.objects.count() and all("progress" in run for run in body)
        return len(queries)

    runs_with_images(1)
    one = queries_for_the_list()
    runs_with_images(9)
    assert queries_for_the_list() == one


def test_each_listed_run_carries_its_own_progress(owner_client):
    first, second = runs_with_images(2)
    factories.generated_image(second, second.batches.last().concept, second.batches.last().prompt, seed_index=1)
    listed = {run["id"]: run["progress"] for run in owner_client.get(reverse("api-run-list")).json()}
    assert (listed[first.pk]["done"], listed[second.pk]["done"]) == (1, 2)
    assert listed[first.pk] == owner_client.get(reverse("api-run-detail", args=[first.pk])).json()["progress"]
