"""The rating page on three screens (Chromium): what is inside the viewport, the scroll that follows the
active question, and the subject's photos enlarged by click, tap or key."""

import os
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from playwright.sync_api import expect

from studyapp.models import Concept, GeneratedImage, ReferenceImage
from tests.rating.browsing import QUESTION_NAMES, open_rating_page, outside_viewport, question
from tests.rating.factories import add_references, published_study

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # live_server + Playwright's sync API share the main thread
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DESKTOPS = [{"width": 1280, "height": 800}, {"width": 1366, "height": 768}]
PHONE = {"width": 390, "height": 844}
EVERYTHING = ["#image-1", "#image-2", "#references img", "#prompt-text", "fieldset.question", "#submit-answer"]
THE_PAIR = ["#image-1", "#image-2", "#references img", "#prompt-text"]
THE_ANSWERS = ["fieldset.question", "#submit-answer"]


LONGEST_PROMPT = "a {concept} with a tree and autumn leaves in the background"  # the longest DreamBooth prompt


def study_with_photos(photos: int = 4, pairs_per_rater: int = 3, templates=(LONGEST_PROMPT,)):
    study = published_study(seeds=3, pairs_per_rater=pairs_per_rater, templates=templates)
    Concept.objects.update(superclass="stuffed animal")  # the longest superclass word of the paper's subjects
    for concept_id in set(study.pairs.values_list("concept_id", flat=True)):
        ReferenceImage.objects.filter(concept_id=concept_id).delete()
        add_references(concept_id, count=photos)
    return study


def scroll_y(page) -> float:
    return page.evaluate("window.scrollY")


@pytest.mark.parametrize("viewport", DESKTOPS, ids=lambda v: f"{v['width']}x{v['height']}")
@pytest.mark.parametrize("photos", [2, 6])
def test_on_a_desktop_everything_is_on_one_screen(browser, live_server, viewport, photos):
    page = open_rating_page(browser, live_server.url, study_with_photos(photos), viewport=viewport)
    expect(page.locator("#prompt-text")).to_have_text(
        "a stuffed animal with a tree and autumn leaves in the background"
    )
    assert page.locator("#references img").count() == photos
    assert outside_viewport(page, EVERYTHING) == []
    assert page.evaluate("document.documentElement.scrollHeight") <= viewport["height"]
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    first, second = page.locator("#image-1").bounding_box(), page.locator("#image-2").bounding_box()
    assert second["y"] == first["y"] and second["x"] > first["x"] + first["width"]  # side by side
    assert min(first["width"], first["height"]) >= 400
    page.context.close()


@pytest.mark.parametrize("viewport", DESKTOPS, ids=lambda v: f"{v['width']}x{v['height']}")
def test_on_a_desktop_keys_move_the_focus_without_scrolling(browser, live_server, viewport):
    page = open_rating_page(browser, live_server.url, study_with_photos(), viewport=viewport)
    focus_after = [question(page, "image"), question(page, "overall"), page.locator("#submit-answer")]
    for key, focused in zip("120", focus_after, strict=True):
        page.keyboard.press(key)
        expect(focused).to_be_focused()
    assert scroll_y(page) == 0
    page.keyboard.press("Enter")
    expect(page.locator("#progress")).to_have_text("2 of 3")
    assert outside_viewport(page, EVERYTHING) == []
    page.context.close()


def test_on_a_phone_the_pair_fills_the_first_screen_and_one_scroll_follows_the_questions(browser, live_server):
    page = open_rating_page(browser, live_server.url, study_with_photos(6), viewport=PHONE, has_touch=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert page.evaluate("document.documentElement.scrollHeight") <= 2 * PHONE["height"]
    assert outside_viewport(page, THE_PAIR) == []
    first, second = page.locator("#image-1").bounding_box(), page.locator("#image-2").bounding_box()
    assert second["y"] >= first["y"] + first["height"]  # stacked
    assert min(first["width"], first["height"]) >= 280

    # Each key answers the active question; the next one gets the focus and is scrolled into view.
    for key, name in zip("12", QUESTION_NAMES[1:], strict=True):
        page.keyboard.press(key)
        expect(question(page, name)).to_be_focused()
        expect(question(page, name)).to_be_in_viewport(ratio=1)
        expect(question(page, name)).to_have_class("question active")
    page.keyboard.press("0")
    expect(page.locator("#submit-answer")).to_be_focused()
    expect(page.locator("#submit-answer")).to_be_in_viewport(ratio=1)
    assert scroll_y(page) > 0
    assert outside_viewport(page, THE_ANSWERS) == []  # one scroll shows all three answers and Submit

    # The next pair appears from the top again, with its images in sight.
    page.keyboard.press("Enter")
    expect(page.locator("#progress")).to_have_text("2 of 3")
    assert scroll_y(page) == 0
    assert outside_viewport(page, THE_PAIR) == []
    page.context.close()


def test_tapping_an_answer_scrolls_to_the_next_question_on_a_phone(browser, live_server):
    page = open_rating_page(browser, live_server.url, study_with_photos(), viewport=PHONE, has_touch=True)
    for name, next_one in zip(QUESTION_NAMES, [*QUESTION_NAMES[1:], None], strict=True):
        question(page, name).locator("label.tie").tap()
        if next_one:
            expect(question(page, next_one)).to_be_in_viewport(ratio=1)
    expect(page.locator("#submit-answer")).to_be_enabled()
    expect(page.locator("#submit-answer")).to_be_in_viewport(ratio=1)
    page.context.close()


def test_a_click_enlarges_a_photo_and_escape_or_a_click_closes_it(browser, live_server):
    page = open_rating_page(browser, live_server.url, study_with_photos(4), viewport=DESKTOPS[0])
    viewer, large = page.locator("#viewer"), page.locator("#viewer-image")
    thumbnail = page.locator("#references a").nth(2)
    thumbnail.click()
    expect(viewer).to_be_visible()
    expect(large).to_have_attribute("src", thumbnail.get_attribute("href"))
    page.wait_for_function("() => document.getElementById('viewer-image').naturalWidth > 0")
    assert large.bounding_box()["width"] >= 4 * thumbnail.bounding_box()["width"]
    page.keyboard.press("1")  # no answer is given behind the photo
    expect(question(page, "text").locator("input:checked")).to_have_count(0)
    page.keyboard.press("Escape")
    expect(viewer).to_be_hidden()
    page.keyboard.press("1")
    expect(question(page, "text").locator("input:checked")).to_have_count(1)

    thumbnail.click()
    expect(viewer).to_be_visible()
    viewer.click()
    expect(viewer).to_be_hidden()
    page.context.close()


def test_the_p_key_shows_the_photos_one_after_another(browser, live_server):
    page = open_rating_page(browser, live_server.url, study_with_photos(3), viewport=DESKTOPS[1])
    links = [link.get_attribute("href") for link in page.locator("#references a").all()]
    large = page.locator("#viewer-image")
    page.keyboard.press("p")
    expect(large).to_have_attribute("src", links[0])
    page.keyboard.press("ArrowRight")
    expect(large).to_have_attribute("src", links[1])
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    expect(large).to_have_attribute("src", links[2])
    page.keyboard.press("Escape")
    expect(page.locator("#viewer")).to_be_hidden()
    page.context.close()


def test_a_tap_enlarges_a_photo_on_a_phone(browser, live_server):
    page = open_rating_page(browser, live_server.url, study_with_photos(6), viewport=PHONE, has_touch=True)
    page.locator("#references a").first.tap()
    expect(page.locator("#viewer")).to_be_visible()
    page.wait_for_function("() => document.getElementById('viewer-image').naturalWidth > 0")
    assert page.locator("#viewer-image").bounding_box()["width"] >= 0.8 * PHONE["width"]
    assert outside_viewport(page, ["#viewer-image"]) == []
    page.locator("#viewer").tap()
    expect(page.locator("#viewer")).to_be_hidden()
    page.context.close()


SCREENSHOTS = os.environ.get("SCREENSHOT_DIR")
EXAMPLE = Path(__file__).resolve().parents[2] / "static" / "studyapp" / "example"


def rasterised(browser, drawing: str, size: int = 512) -> bytes:
    """One of the example drawings as a PNG, drawn by the browser: pair images are served re-encoded."""
    page = browser.new_page(viewport={"width": size, "height": size})
    svg = (EXAMPLE / drawing).read_text()
    page.set_content(f"<body style='margin:0'><div style='width:{size}px;height:{size}px'>{svg}</div></body>")
    page.locator("svg").evaluate("svg => { svg.style.width = '100%'; svg.style.height = '100%'; }")
    png = page.screenshot()
    page.close()
    return png


def study_of_the_example(browser):
    """A one-pair study drawn from the instruction page's example, so a screenshot shows something to judge."""
    study = published_study(seeds=1, templates=("a {concept} on the beach",), pairs_per_rater=1)
    Concept.objects.update(superclass="mug")
    for reference in ReferenceImage.objects.all():
        reference.image.save("subject.png", ContentFile(rasterised(browser, "subject.svg", 256)))
    method_a = study.comparisons.get().method_a_id
    for image in GeneratedImage.objects.all():
        drawing = "image-1.svg" if image.method_id == method_a else "image-2.svg"
        image.file.save("example.png", ContentFile(rasterised(browser, drawing)))
    return study


def save_screenshot(page, name: str) -> None:
    """A viewport screenshot in at most 64 colours: the docs' PNGs stay small."""
    from PIL import Image

    path = Path(SCREENSHOTS) / name
    page.screenshot(path=str(path))
    Image.open(path).convert("RGB").quantize(64).save(path, optimize=True)


@pytest.mark.skipif(not SCREENSHOTS, reason="set SCREENSHOT_DIR to write the docs' screenshots")
@pytest.mark.parametrize("viewport", [*DESKTOPS, PHONE], ids=lambda v: f"{v['width']}x{v['height']}")
def test_write_screenshots(browser, live_server, viewport):
    study = study_of_the_example(browser)
    size = f"{viewport['width']}x{viewport['height']}"
    if viewport == DESKTOPS[0]:
        page = browser.new_page(viewport=viewport)
        page.goto(f"{live_server.url}/s/{study.open_link_token}/")
        page.click("button[value=yes]")
        expect(page.locator("#example img")).to_have_count(3)
        save_screenshot(page, f"rater-instructions-{size}.png")
        page.close()
    page = open_rating_page(browser, live_server.url, study, viewport=viewport)
    if viewport == PHONE:
        save_screenshot(page, f"rater-page-{size}.png")
        size += "-answering"
    page.keyboard.press("2")
    expect(question(page, "image")).to_be_focused()
    save_screenshot(page, f"rater-page-{size}.png")
    page.context.close()
