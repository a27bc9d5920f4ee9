"""A rater in a real browser (Debian's Chromium): entry link to completion code, by keyboard only, with
each next pair swapped in place from JSON; and the same page with JavaScript off."""

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from studyapp.models import Answer, GeneratedImage, GenerationRun, Method
from tests.rating.browsing import open_rating_page, question, wait_for_both_images
from tests.rating.factories import published_study

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # live_server + Playwright's sync API share the main thread
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def blinding_secrets() -> list[str]:
    secrets = [method.name for method in Method.objects.all()]
    secrets += [run.label for run in GenerationRun.objects.all() if run.label]
    for image in GeneratedImage.objects.all():
        secrets += [image.file.name, Path(image.file.name).name, image.content_hash[:16]]
    return secrets


def answer_by_keys(page, keys: str) -> str:
    """Press the three answer keys and Enter; returns the body of the JSON reply the page swapped in."""
    for key in keys:
        page.keyboard.press(key)
    with page.expect_response(re.compile(r"/answer\.json$")) as reply:
        page.keyboard.press("Enter")
    return reply.value.text()


def test_a_rater_goes_from_the_link_to_the_completion_code_by_keyboard(browser, live_server):
    study = published_study(
        seeds=3,
        pairs_per_rater=4,
        completion_code="DONE-777",
        consent_text="Answers are anonymous.",
        instructions="Look closely.",
    )
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(f"{live_server.url}/s/{study.open_link_token}/")
    assert "Answers are anonymous." in page.content()
    page.keyboard.press("Enter")  # "I agree" has the focus
    expect(page.get_by_text("Look closely.")).to_be_visible()
    expect(page.locator("#example img")).to_have_count(3)
    page.keyboard.press("Enter")  # "Start"
    expect(page.locator("#answer-form")).to_be_visible()
    page.evaluate("window.loadedOnce = true")  # gone if a later pair came with a page load
    sources = [page.content()]

    # Pair 1: Enter does nothing until all three questions are answered; the next pair is preloaded.
    wait_for_both_images(page)
    expect(page.locator("#progress")).to_have_text("1 of 4")
    preload = page.get_attribute("#rate", "data-preload").split()
    assert len(preload) == 2
    page.wait_for_function(
        f"() => performance.getEntriesByType('resource').filter(e => e.name.endsWith('{preload[1]}')).length > 0"
    )
    page.keyboard.press("1")
    expect(question(page, "image")).to_be_focused()
    page.keyboard.press("Enter")
    expect(question(page, "image")).to_be_focused()
    assert page.is_disabled("#submit-answer")
    sources.append(answer_by_keys(page, "20"))
    expect(page.locator("#progress")).to_have_text("2 of 4")
    assert re.search(r"/i/[^/]+/1$", page.get_attribute("#image-1", "src")).group(0) == preload[0]
    expect(page.locator("input:checked")).to_have_count(0)
    assert page.title() == "Pair 2 of 4"
    assert page.evaluate("window.loadedOnce") is True

    # Pair 2 answered, then a reload mid-study on pair 3 gives the same pair back.
    wait_for_both_images(page)
    sources.append(answer_by_keys(page, "221"))
    expect(page.locator("#progress")).to_have_text("3 of 4")
    before = page.get_attribute("input[name=assignment]", "value")
    page.reload()
    expect(page.locator("#progress")).to_have_text("3 of 4")
    assert page.get_attribute("input[name=assignment]", "value") == before

    wait_for_both_images(page)
    sources.append(answer_by_keys(page, "102"))
    expect(page.locator("#progress")).to_have_text("4 of 4")
    wait_for_both_images(page)
    sources.append(page.content())
    for key in "102":
        page.keyboard.press(key)
    page.keyboard.press("Enter")  # the reply points to the page with the code
    expect(page.locator("#completion-code")).to_have_text("DONE-777")

    answers = list(Answer.objects.order_by("submitted"))
    assert len(answers) == 4
    assert answers[0].screen_answers == {"text": "1", "image": "2", "overall": "0"}
    assert answers[1].screen_answers == {"text": "2", "image": "2", "overall": "1"}
    assert all(answer.response_ms is not None for answer in answers)
    secrets = blinding_secrets()
    for text in sources + requested:
        assert [secret for secret in secrets if secret in text] == []
    image_urls = [url for url in requested if "/i/" in url or "/p/" in url]
    assert len(image_urls) >= 8
    page.close()


def test_with_javascript_off_the_form_posts_and_the_next_pair_is_a_new_page(browser, live_server):
    study = published_study(pairs_per_rater=2)
    page = open_rating_page(
        browser, live_server.url, study, viewport={"width": 1280, "height": 800}, java_script_enabled=False
    )
    expect(page.locator("#progress")).to_have_text("1 of 2")
    first = page.get_attribute("input[name=assignment]", "value")
    for name in ("text", "image", "overall"):
        question(page, name).locator("label").first.click()
    with page.expect_navigation():
        page.click("#submit-answer")
    expect(page.locator("#progress")).to_have_text("2 of 2")
    assert page.get_attribute("input[name=assignment]", "value") != first
    answer = Answer.objects.get()
    assert answer.screen_answers == {"text": "1", "image": "1", "overall": "1"}
    assert answer.response_ms is None  # nothing measured it
    # A photo of the subject is a plain link to the image itself.
    photo = page.locator("#references a").first.get_attribute("href")
    assert re.fullmatch(r"/p/[A-Za-z0-9_-]{20,}", photo)
    page.context.close()


def test_a_refused_answer_falls_back_to_the_form_and_the_page_that_explains(browser, live_server):
    study = published_study(pairs_per_rater=2)
    page = open_rating_page(browser, live_server.url, study, viewport={"width": 1280, "height": 800})
    type(study).objects.filter(pk=study.pk).update(state="closed")
    for key in "120":
        page.keyboard.press(key)
    with page.expect_response(re.compile(r"/answer$")) as plain:  # after answer.json said 410
        page.keyboard.press("Enter")
    assert plain.value.status == 410
    expect(page.locator("h1")).to_have_text("Your answer was not stored")
    expect(page.locator(".message")).to_contain_text("This study is closed")
    assert not Answer.objects.exists()
    page.context.close()
