"""The study set-up page in Chromium: copying the rater links, the live monitor, the close confirmation."""

import functools
import os
from pathlib import Path

import pytest
from django.db import connections
from django.urls import reverse
from django.utils import timezone

from studyapp.models import Rater, Study
from studyapp.rating.answers import submit_answer
from studyapp.rating.assignment import claim_leases
from studyapp.studies.publishing import publish
from tests import factories
from tests.conftest import need_service

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def staff_page(live_server, owner_client):
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
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
        context.add_cookies(
            [{"name": "sessionid", "value": owner_client.cookies["sessionid"].value, "url": live_server.url}]
        )
        page = context.new_page()
        yield page
        page.goto("about:blank")  # stop the monitor's polling before the server goes away
        browser.close()


def closes_its_connections(test):
    """Under Playwright's sync API the test body gets a database connection of its own, which pytest-django
    does not close; left open, the test database cannot be dropped."""

    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        try:
            return test(*args, **kwargs)
        finally:
            connections.close_all()

    return wrapper


@pytest.fixture
def published():
    study = factories.study_with_images(methods=2, concepts=1, seeds=2)
    Study.objects.filter(pk=study.pk).update(gold_rate=0, attention_rate=0, pairs_per_rater=2, overlap_fraction=0)
    publish(study)
    return Study.objects.get(pk=study.pk)


def _setup_url(live_server, study) -> str:
    return live_server.url + reverse("admin:studyapp_study_setup", args=[study.pk])


@closes_its_connections
def test_the_copy_button_puts_the_prolific_url_on_the_clipboard(staff_page, live_server, published):
    staff_page.goto(_setup_url(live_server, published))
    expected = f"{live_server.url}/s/{published.open_link_token}/?PROLIFIC_PID={{{{%PROLIFIC_PID%}}}}"
    assert staff_page.input_value("#prolific-link").startswith(expected)
    staff_page.click('button[data-copy="prolific-link"]')
    staff_page.wait_for_selector('button[data-copy="prolific-link"]:has-text("Copied")')
    assert staff_page.evaluate("navigator.clipboard.readText()") == staff_page.input_value("#prolific-link")


@closes_its_connections
def test_the_monitor_shows_a_new_answer_without_a_reload(staff_page, live_server, published):
    staff_page.goto(_setup_url(live_server, published))
    cell = '#monitor [data-field="answers_last_hour"]'
    assert staff_page.inner_text(cell) == "0"
    rater = Rater.objects.create(study=published, source=Rater.Source.OPEN, external_id="watched")
    rater.consented = rater.instructed = timezone.now()
    rater.save()
    lease = claim_leases(rater).current
    submit_answer(rater, lease.token, {"text": "1", "image": "2", "overall": "0"}, response_ms=2000)
    staff_page.wait_for_selector(f'{cell}:text-is("1")', timeout=15_000)
    assert staff_page.inner_text('#monitor [data-field="active_raters"]') == "1"
    assert "no answers" not in staff_page.inner_text('#monitor [data-field="projected_finish"]')


@closes_its_connections
def test_close_asks_for_confirmation_and_acts_only_on_yes(staff_page, live_server, published):
    staff_page.goto(_setup_url(live_server, published))
    staff_page.click('input[name="submit-close"]')
    staff_page.wait_for_selector("#confirm-explanation")
    assert "cannot be undone" in staff_page.inner_text("#confirm-explanation")
    assert Study.objects.get(pk=published.pk).state == Study.State.PUBLISHED
    staff_page.click("text=No, go back")
    staff_page.wait_for_selector("#study-state")
    staff_page.click('input[name="submit-close"]')
    staff_page.click('input[name="confirm-close"]')
    staff_page.wait_for_selector('#study-state:has-text("closed")')
    assert Study.objects.get(pk=published.pk).state == Study.State.CLOSED
