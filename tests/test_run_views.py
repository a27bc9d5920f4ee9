"""Run pages, the image browser, the runs API and the admin: staff only, validated before queueing."""

import json

import pytest
from django.db import connections
from django.urls import reverse

import studyapp.admin_runs  # noqa: F401  (the runs admin replaces the plain one)
from studyapp import runs
from studyapp.generation_jobs import run_batch
from studyapp.models import GenerationBatch, GenerationRun, Method, Sweep
from tests import factories
from tests.runs_fixtures import FAST_STEPS, small_run

pytestmark = pytest.mark.django_db


def finished_run(seeds=(0, 1)):
    run = small_run(seeds=seeds)
    for batch in run.batches.all():
        run_batch(batch.pk)
    run.refresh_from_db()
    return run


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


# ---------------------------------------------------------------- access


@pytest.mark.parametrize("name, args", [("run-list", []), ("browser", [])])
def test_pages_are_for_staff_only(client, outsider, name, args):
    url = reverse(name, args=args)
    assert client.get(url).status_code == 302
    client.force_login(outsider)
    response = client.get(url)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_the_api_refuses_non_staff(client, outsider):
    client.force_login(outsider)
    assert client.get(reverse("api-run-list")).status_code == 403
    assert client.post(reverse("api-run-list"), {}, content_type="application/json").status_code == 403


def test_progress_json_and_actions_refuse_non_staff(client, outsider):
    run = small_run()
    client.force_login(outsider)
    assert client.get(reverse("run-progress", args=[run.pk])).status_code == 302
    assert client.post(reverse("run-action", args=[run.pk, "cancel"])).status_code == 302
    run.refresh_from_db()
    assert run.state == GenerationRun.State.QUEUED


# ---------------------------------------------------------------- run pages


def test_the_run_page_shows_progress_from_the_database(owner_client, tiny_model):
    run = finished_run()
    page = owner_client.get(reverse("run-detail", args=[run.pk])).content.decode()
    assert '<progress max="2" value="2">' in page and "state-done" in page
    assert reverse("run-progress", args=[run.pk]) in page
    listing = owner_client.get(reverse("run-list")).content.decode()
    assert reverse("run-detail", args=[run.pk]) in listing


def test_progress_json_reports_a_failed_run_with_its_message(owner_client):
    run = small_run()
    batch = run.batches.get()
    GenerationBatch.objects.filter(pk=batch.pk).update(state="failed", error="ModelLoadError: no model at /x")
    runs.refresh_run(run.pk)
    data = owner_client.get(reverse("run-progress", args=[run.pk])).json()
    assert data["state"] == "failed" and "no model at /x" in data["error"]
    assert (data["done"], data["total"], data["percent"]) == (0, 2, 0.0)


def test_cancel_then_resume_from_the_run_page(owner_client, django_capture_on_commit_callbacks):
    run = small_run()
    owner_client.post(reverse("run-action", args=[run.pk, "cancel"]))
    run.refresh_from_db()
    assert run.state == GenerationRun.State.CANCELLED
    with django_capture_on_commit_callbacks() as sent:
        response = owner_client.post(reverse("run-action", args=[run.pk, "resume"]))
    assert response.status_code == 302 and len(sent) == 1
    run.refresh_from_db()
    assert run.state == GenerationRun.State.QUEUED


def test_an_unknown_action_is_refused(owner_client):
    run = small_run()
    assert owner_client.post(reverse("run-action", args=[run.pk, "explode"])).status_code == 404
    assert owner_client.get(reverse("run-action", args=[run.pk, "cancel"])).status_code == 405


# ---------------------------------------------------------------- browser


def test_the_browser_shows_a_prompt_by_method_grid_linked_to_each_image(owner_client):
    study = factories.study_with_images(methods=3, seeds=2)
    image = factories.GeneratedImage.objects.select_related("concept", "prompt__prompt_set").first()
    concept, prompt_set = image.concept, image.prompt.prompt_set
    page = owner_client.get(reverse("browser"), {"concept": concept.slug, "prompt_set": prompt_set.slug}).content.decode()
    methods = Method.objects.filter(images__concept=concept).distinct()
    assert all(f">{method.name}<" in page for method in methods)
    assert page.count("<img ") == 3 * 2 * 2  # methods x prompts x seeds
    assert reverse("browser-image", args=[image.token]) in page
    detail = owner_client.get(reverse("browser-image", args=[image.token])).content.decode()
    assert image.content_hash in detail and f"<td>{image.seed_index}</td>" in detail


def test_the_browser_filters_methods_and_seeds(owner_client):
    factories.study_with_images(methods=3, seeds=3)
    image = factories.GeneratedImage.objects.select_related("concept", "prompt__prompt_set").first()
    query = {"concept": image.concept.slug, "prompt_set": image.prompt.prompt_set.slug, "method": [image.method_id], "seed": [2]}
    page = owner_client.get(reverse("browser"), query).content.decode()
    assert page.count("<img ") == 2  # one method, one seed, two prompts


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


@pytest.mark.parametrize(
    "overrides, field",
    [({"seed_indices": []}, "seed_indices"), ({"seed_indices": [-1]}, "seed_indices"), ({"steps": 0}, "steps"), ({"concepts": []}, "concepts")],
)
def test_api_refuses_an_invalid_run_and_queues_nothing(owner_client, django_capture_on_commit_callbacks, overrides, field):
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
        "name": "api-sweep", "sampler": "masked", "preset": "masked", "prompt_set": factories.prompt_set().slug,
        "concepts": [factories.concept().slug], "seed_indices": [0], "steps": FAST_STEPS,
    }  # fmt: skip
    with django_capture_on_commit_callbacks() as sent:
        response = owner_client.post(reverse("api-sweep-list"), body, content_type="application/json")
    assert response.status_code == 201, response.content
    assert len(response.json()["runs"]) == len(presets["masked"]) == len(sent) / 2


def test_api_refuses_an_invalid_sweep_and_keeps_nothing(owner_client):
    body = {
        "name": "bad", "sampler": "mixed", "grid": [{"w_s": 1.0}, {"w_s": -5.0}], "prompt_set": factories.prompt_set().slug,
        "concepts": [factories.concept().slug], "seed_indices": [0], "steps": FAST_STEPS,
    }  # fmt: skip
    response = owner_client.post(reverse("api-sweep-list"), body, content_type="application/json")
    assert response.status_code == 400 and "w_s" in json.dumps(response.json())
    assert (Sweep.objects.count(), GenerationRun.objects.count()) == (0, 0)


# ---------------------------------------------------------------- admin


def test_admin_add_run_validates_then_queues(owner_client, django_capture_on_commit_callbacks):
    method, prompts, concept = factories.method(sampler="switching"), factories.prompt_set(), factories.concept()
    form = {"label": "from admin", "method": method.pk, "prompt_set": prompts.pk, "concepts": [concept.pk], "seed_indices": "[0, 1, 2]", "steps": FAST_STEPS}
    url = reverse("admin:studyapp_generationrun_add")
    bad = owner_client.post(url, {**form, "seed_indices": "[1, 1]"})
    assert bad.status_code == 200 and "each seed index once" in bad.content.decode()
    with django_capture_on_commit_callbacks() as sent:
        response = owner_client.post(url, form)
    assert response.status_code == 302
    run = GenerationRun.objects.get()
    assert (run.images_total, run.batches.count(), len(sent)) == (6, 2, 2)
    assert set(run.params) >= {"t_sw"}
    changelist = owner_client.get(reverse("admin:studyapp_generationrun_changelist")).content.decode()
    assert "<progress" in changelist and reverse("run-detail", args=[run.pk]) in changelist
    change = owner_client.get(reverse("admin:studyapp_generationrun_change", args=[run.pk])).content.decode()
    assert "<progress" in change and concept.slug in change  # the batches inline


def test_admin_add_sweep_queues_its_runs(owner_client, django_capture_on_commit_callbacks):
    prompts, concept = factories.prompt_set(), factories.concept()
    form = {"name": "adm", "sampler": "switching", "preset": "switching", "grid": "[]", "prompt_set": prompts.pk, "concepts": [concept.pk], "seed_indices": "[0]", "steps": FAST_STEPS, "base_model": "", "personalization": ""}
    url = reverse("admin:studyapp_sweep_add")
    bad = owner_client.post(url, {**form, "sampler": "mixed"})
    assert bad.status_code == 200 and "unknown parameter" in bad.content.decode()
    with django_capture_on_commit_callbacks():
        response = owner_client.post(url, form)
    assert response.status_code == 302, response.content.decode()[:2000]
    sweep = Sweep.objects.get()
    assert sweep.runs.count() == len(studyapp.sweeps.presets()["switching"])
    page = owner_client.get(reverse("admin:studyapp_sweep_change", args=[sweep.pk])).content.decode()
    assert "<progress" in page


# ---------------------------------------------------------------- the progress bar in a browser


@pytest.fixture
def chromium_page(live_server, owner_client):
    import os
    from pathlib import Path

    from tests.conftest import need_service

    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # live_server + Playwright's sync API share the main thread
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        need_service(f"Chromium at {chromium}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium), args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        context = browser.new_context()
        context.add_cookies([{"name": "sessionid", "value": owner_client.cookies["sessionid"].value, "url": live_server.url}])
        page = context.new_page()
        yield page
        page.goto("about:blank")  # stop polling before the live server and its database go away
        browser.close()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_progress_bar_follows_the_database_until_the_run_is_done(chromium_page, live_server):
    try:
        follow_the_progress_bar(chromium_page, live_server)
    finally:
        # Under Playwright's sync API the test body gets a database connection of its own (another
        # context), which pytest-django does not close; left open, the test database cannot be dropped.
        connections.close_all()


def follow_the_progress_bar(page, live_server):
    method, prompts, concept = factories.method(), factories.prompt_set(), factories.concept()
    run = GenerationRun.objects.create(method=method, prompt_set=prompts, seed_indices=[0, 1], images_total=4, steps=2)
    run.concepts.add(concept)
    batches = [GenerationBatch.objects.create(run=run, concept=concept, prompt=p, seed_indices=[0, 1]) for p in prompts.prompts.all()]
    page.goto(f"{live_server.url}{reverse('run-detail', args=[run.pk])}")
    assert page.get_attribute("progress", "value") == "0"
    GenerationBatch.objects.filter(pk=batches[0].pk).update(state="done")
    for seed in (0, 1):
        factories.generated_image(run, concept, batches[0].prompt, seed)
    runs.refresh_run(run.pk)
    page.wait_for_function("document.querySelector('progress').value === 2", timeout=10_000)
    assert page.inner_text(".run-state") == "running"
    GenerationBatch.objects.filter(pk=batches[1].pk).update(state="failed", error="ModelLoadError: no model at /nowhere")
    runs.refresh_run(run.pk)
    page.wait_for_selector("text=Re-queue failed batches", timeout=10_000)  # the page reloads with the actions of a failed run
    assert "no model at /nowhere" in page.inner_text(".run-error")
