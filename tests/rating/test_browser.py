"""A rater in a real browser (Debian's Chromium): entry link to completion code, by keyboard only."""

import os
import re
from pathlib import Path

import pytest

from studyapp.models import Answer, GeneratedImage, GenerationRun, Method
from tests.conftest import need_service
from tests.rating.factories import published_study

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # live_server + Playwright's sync API share the main thread
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        need_service(f"Chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


def wait_for_both_images(page):
    page.wait_for_function(
        "() => ['image-1', 'image-2'].every(id => {"
        " const i = document.getElementById(id); return i.complete && i.naturalWidth > 0; })"
    )


def progress_text(page) -> str:
    return page.inner_text("#progress")


def blinding_secrets() -> list[str]:
    secrets = [method.name for method in Method.objects.all()]
    secrets += [run.label for run in GenerationRun.objects.all() if run.label]
    for image in GeneratedImage.objects.all():
        secrets += [image.file.name, Path(image.file.name).name, image.content_hash[:16]]
    return secrets


def test_a_rater_goes_from_the_link_to_the_completion_code_by_keyboard(browser, live_server):
    study = published_study(
        seeds=3,
        pairs_per_rater=4,
        completion_code="DONE-777",
        consent_text="Answers are anonymous.",
        instructions="Look closely.",
    )
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(f"{live_server.url}/s/{study.open_link_token}/")
    assert "Answers are anonymous." in page.content()
    page.keyboard.press("Enter")  # "I agree" has the focus
    page.wait_for_selector("text=Look closely.")
    page.keyboard.press("Enter")  # "Start"
    page.wait_for_selector("#answer-form")
    sources = []

    # Pair 1: Enter does nothing until all three questions are answered; the next pair is preloaded.
    wait_for_both_images(page)
    assert progress_text(page) == "1 of 4"
    preload = page.get_attribute("#rate", "data-preload").split()
    assert len(preload) == 2
    page.wait_for_function(
        f"() => performance.getEntriesByType('resource').filter(e => e.name.endsWith('{preload[1]}')).length > 0"
    )
    page.keyboard.press("1")
    page.keyboard.press("Enter")
    assert progress_text(page) == "1 of 4"
    assert page.is_disabled("#submit-answer")
    sources.append(page.content())
    page.keyboard.press("2")
    page.keyboard.press("0")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert progress_text(page) == "2 of 4"
    assert re.search(r"/i/[^/]+/1$", page.get_attribute("#image-1", "src")).group(0) == preload[0]

    # Pair 2 answered, then a reload mid-study on pair 3 gives the same pair back.
    wait_for_both_images(page)
    for key in ("2", "2", "1"):
        page.keyboard.press(key)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert progress_text(page) == "3 of 4"
    before = page.get_attribute("input[name=assignment]", "value")
    page.reload()
    assert progress_text(page) == "3 of 4"
    assert page.get_attribute("input[name=assignment]", "value") == before

    for expected in ("3 of 4", "4 of 4"):
        wait_for_both_images(page)
        assert progress_text(page) == expected
        sources.append(page.content())
        for key in ("1", "0", "2"):
            page.keyboard.press(key)
        with page.expect_navigation():
            page.keyboard.press("Enter")
    assert page.inner_text("#completion-code") == "DONE-777"

    answers = list(Answer.objects.order_by("submitted"))
    assert len(answers) == 4
    assert answers[0].screen_answers == {"text": "1", "image": "2", "overall": "0"}
    assert all(answer.response_ms is not None for answer in answers)
    secrets = blinding_secrets()
    for text in sources + requested:
        assert [secret for secret in secrets if secret in text] == []
    image_urls = [url for url in requested if "/i/" in url or "/p/" in url]
    assert len(image_urls) >= 8
    page.close()


@pytest.mark.parametrize("width", [360, 1280])
def test_the_rating_page_fits_the_screen(browser, live_server, width):
    study = published_study(pairs_per_rater=2)
    page = browser.new_page(viewport={"width": width, "height": 780})
    page.goto(f"{live_server.url}/s/{study.open_link_token}/")
    page.click("button[value=yes]")
    page.click("text=Start")
    page.wait_for_selector("#answer-form")
    wait_for_both_images(page)
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    first = page.locator("#image-1").bounding_box()
    second = page.locator("#image-2").bounding_box()
    for box in (first, second):
        assert box["x"] >= 0 and box["x"] + box["width"] <= width
        assert box["width"] >= min(280, width * 0.3)
    if width <= 400:
        assert second["y"] >= first["y"] + first["height"]  # stacked
    else:
        assert second["y"] == first["y"]  # side by side
    # Tapping works as well as keys: the answer buttons fit and submit stays off until all three are set.
    for question in ("text", "image", "overall"):
        assert page.is_disabled("#submit-answer")
        page.click(f"fieldset[data-question={question}] label.tie")
    assert not page.is_disabled("#submit-answer")
    page.close()
