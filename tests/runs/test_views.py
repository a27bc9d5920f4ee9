"""Run pages and the image browser: staff only, progress from the database, actions from one table."""

import time
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from studyapp.models import GeneratedImage, GenerationBatch, GenerationRun, Method, Study
from studyapp.runs.state import refresh_run
from studyapp.runs.worker import run_batch
from studyapp.studies.check_images import CHECK_METHODS
from studyapp.studies.publishing import build_study_pairs
from tests import factories
from tests.runs.factories import FAST_STEPS, runs_with_images, small_run

pytestmark = pytest.mark.django_db


def finished_run(seeds=(0, 1)):
    run = small_run(seeds=seeds)
    for batch in run.batches.all():
        run_batch(batch.pk)
    run.refresh_from_db()
    return run


# ---------------------------------------------------------------- access


@pytest.mark.parametrize(("name", "args"), [("run-list", []), ("browser", [])])
def test_pages_are_for_staff_only(client, outsider, name, args):
    url = reverse(name, args=args)
    assert client.get(url).status_code == 302
    client.force_login(outsider)
    response = client.get(url)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


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


def test_the_run_list_makes_as_many_queries_for_ten_runs_as_for_one(owner_client):
    def queries_for_the_list() -> int:
        with CaptureQueriesContext(connection) as queries:
            page = owner_client.get(reverse("run-list")).content.decode()
        assert page.count("<progress ") == GenerationRun.objects.count()
        return len(queries)

    runs_with_images(1)
    one = queries_for_the_list()
    runs_with_images(9)
    assert queries_for_the_list() == one


def test_progress_json_reports_a_failed_run_with_its_message(owner_client):
    run = small_run()
    batch = run.batches.get()
    GenerationBatch.objects.filter(pk=batch.pk).update(state="failed", error="ModelLoadError: no model at /x")
    refresh_run(run.pk)
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
    factories.study_with_images(methods=3, seeds=2)
    image = factories.GeneratedImage.objects.select_related("concept", "prompt__prompt_set").first()
    concept, prompt_set = image.concept, image.prompt.prompt_set
    page = owner_client.get(
        reverse("browser"), {"concept": concept.slug, "prompt_set": prompt_set.slug}
    ).content.decode()
    methods = Method.objects.filter(images__concept=concept).distinct()
    assert all(f">{method.name}<" in page for method in methods)
    assert page.count("<img ") == 3 * 2 * 2  # methods x prompts x seeds
    assert reverse("browser-image", args=[image.token]) in page
    detail = owner_client.get(reverse("browser-image", args=[image.token])).content.decode()
    assert image.content_hash in detail and f"<td>{image.seed_index}</td>" in detail


def test_the_browser_filters_methods_and_seeds(owner_client):
    factories.study_with_images(methods=3, seeds=3)
    image = factories.GeneratedImage.objects.select_related("concept", "prompt__prompt_set").first()
    query = {
        "concept": image.concept.slug,
        "prompt_set": image.prompt.prompt_set.slug,
        "method": [image.method_id],
        "seed": [2],
    }
    page = owner_client.get(reverse("browser"), query).content.decode()
    assert page.count("<img ") == 2  # one method, one seed, two prompts


def _browser_query(study):
    image = GeneratedImage.objects.exclude(method__name__in=CHECK_METHODS).select_related("concept", "prompt").first()
    return {"concept": image.concept.slug, "prompt_set": image.prompt.prompt_set.slug}


def test_the_browser_leaves_out_the_check_methods(owner_client):
    study = factories.study_with_images(methods=2, concepts=2, seeds=2)
    Study.objects.filter(pk=study.pk).update(gold_rate=0.2, attention_rate=0.2, pairs_per_rater=10)
    build_study_pairs(study)
    assert GeneratedImage.objects.filter(method__name__in=CHECK_METHODS).exists()
    page = owner_client.get(reverse("browser"), _browser_query(study)).content.decode()
    assert not any(name in page for name in CHECK_METHODS)
    assert page.count("<img ") == 2 * 2 * 2  # methods x prompts x seeds of the chosen concept


def test_the_browser_shows_only_prompts_that_have_images(owner_client):
    templates = ("a {concept} in the snow", "a {concept} on the beach", "a {concept} on the moon")
    factories.study_with_images(methods=2, seeds=1, templates=templates)
    GeneratedImage.objects.filter(prompt__template=templates[2]).delete()
    page = owner_client.get(reverse("browser"), _browser_query(None)).content.decode()
    assert "on the moon" not in page and page.count('<th class="browser-prompt">') == 1 + 2


# ---------------------------------------------------------------- who generates a saved run


def _wait_for(condition, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


def _run_form():
    method, prompts, concept = factories.method(), factories.prompt_set(), factories.concept()
    return {
        "label": "saved here",
        "method": method.pk,
        "prompt_set": prompts.pk,
        "concepts": [concept.pk],
        "seed_indices": "[0]",
        "steps": FAST_STEPS,
    }


@pytest.mark.django_db(transaction=True)
def test_without_a_broker_a_saved_run_is_generated_in_the_background_and_the_page_says_so(
    owner_client, settings, tiny_model
):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    response = owner_client.post(reverse("admin:studyapp_generationrun_add"), _run_form(), follow=True)
    assert "1 run(s) are being generated in the background" in response.content.decode()
    assert "run(s) queued" not in response.content.decode()
    run = GenerationRun.objects.get()
    _wait_for(lambda: GenerationRun.objects.get(pk=run.pk).state == "done", "the background generation")
    assert run.images.count() == 2
    page = owner_client.get(reverse("run-list")).content.decode()
    assert "generated in the background by the web server process" in page


@pytest.mark.services
def test_with_a_broker_and_no_worker_the_pages_say_that_nobody_consumes_the_queue(owner_client, settings, redis_url):
    from django.core.cache import cache

    from studyapp.celery import app

    settings.CELERY_TASK_ALWAYS_EAGER = False
    app.conf.broker_url = redis_url
    cache.clear()
    run = small_run()
    page = owner_client.get(reverse("run-detail", args=[run.pk])).content.decode()
    assert "No worker is consuming the gpu queue" in page


def test_progress_json_carries_the_batch_table_when_asked(owner_client):
    run = small_run()
    batch = run.batches.get()
    GenerationBatch.objects.filter(pk=batch.pk).update(state="running", worker="gpu0@host", attempts=1)
    url = reverse("run-progress", args=[run.pk])
    assert "batch_rows" not in owner_client.get(url).json()
    rows = owner_client.get(url, {"batches": 1}).json()["batch_rows"]
    assert rows == [
        {"id": batch.pk, "state": "running", "attempts": 1, "worker": "gpu0@host", "heartbeat": "", "error": ""}
    ]


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
            executable_path=str(chromium),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        context = browser.new_context()
        context.add_cookies(
            [{"name": "sessionid", "value": owner_client.cookies["sessionid"].value, "url": live_server.url}]
        )
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
    batches = [
        GenerationBatch.objects.create(run=run, concept=concept, prompt=p, seed_indices=[0, 1])
        for p in prompts.prompts.all()
    ]
    page.goto(f"{live_server.url}{reverse('run-detail', args=[run.pk])}")
    assert page.get_attribute("progress", "value") == "0"
    assert page.is_hidden(".run-eta-box")
    GenerationRun.objects.filter(pk=run.pk).update(state="running", started=timezone.now() - timedelta(seconds=20))
    GenerationBatch.objects.filter(pk=batches[0].pk).update(state="done", worker="gpu0@test", attempts=1)
    for seed in (0, 1):
        factories.generated_image(run, concept, batches[0].prompt, seed)
    refresh_run(run.pk)
    page.wait_for_function("() => document.querySelector('progress').value === 2", timeout=10_000)
    assert page.inner_text(".run-state") == "running"
    first_batch = f'tr[data-batch="{batches[0].pk}"]'
    page.wait_for_function(
        f"document.querySelector('{first_batch} [data-field=state]').textContent === 'done'", timeout=10_000
    )
    assert page.inner_text(f"{first_batch} [data-field=worker]") == "gpu0@test"
    assert page.is_visible(".run-eta-box") and float(page.inner_text(".run-eta")) > 0
    GenerationBatch.objects.filter(pk=batches[1].pk).update(
        state="failed", error="ModelLoadError: no model at /nowhere"
    )
    refresh_run(run.pk)
    page.wait_for_selector(
        "text=Re-queue failed batches", timeout=10_000
    )  # the page reloads with the actions of a failed run
    assert "no model at /nowhere" in page.inner_text(".run-error")


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_browser_fits_a_1280_pixel_screen_with_many_methods(chromium_page, live_server):
    try:
        factories.study_with_images(methods=7, seeds=2)
        chromium_page.set_viewport_size({"width": 1280, "height": 800})
        chromium_page.goto(f"{live_server.url}{reverse('browser')}?{urlencode(_browser_query(None))}")
        assert chromium_page.locator(".browser-grid img").count() == 7 * 2 * 2
        widths = chromium_page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert widths[0] <= widths[1], f"the page is {widths[0]} px wide in a {widths[1]} px window"
        image = chromium_page.locator(".browser-grid img").first.bounding_box()
        assert 32 <= image["width"] <= 128
    finally:
        connections.close_all()
