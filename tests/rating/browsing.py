"""Helpers of the browser tests: walking a rater to the rating page, and where things are on screen."""

from playwright.sync_api import Page, expect

QUESTION_NAMES = ("text", "image", "overall")


def question(page: Page, name: str):
    return page.locator(f"fieldset[data-question={name}]")


def wait_for_both_images(page: Page) -> None:
    page.wait_for_function(
        "() => ['image-1', 'image-2'].every(id => {"
        " const i = document.getElementById(id); return i.complete && i.naturalWidth > 0; })"
    )


def open_rating_page(browser, base_url: str, study, **context) -> Page:
    """A new rater through the open link, consent and instructions, on the first pair with its images loaded."""
    page = browser.new_context(**context).new_page()
    page.goto(f"{base_url}/s/{study.open_link_token}/")
    page.click("button[value=yes]")
    page.click("text=Start")
    expect(page.locator("#answer-form")).to_be_visible()
    if context.get("java_script_enabled", True):
        wait_for_both_images(page)
    return page


def outside_viewport(page: Page, selectors: list[str]) -> list[str]:
    """The selectors (every element each one matches) whose bounding box is not wholly inside the viewport."""
    width, height = page.viewport_size["width"], page.viewport_size["height"]
    outside = []
    for selector in selectors:
        boxes = [element.bounding_box() for element in page.locator(selector).all()]
        assert boxes, f"nothing matches {selector}"
        for box in boxes:
            inside = box["x"] >= 0 and box["y"] >= 0
            if not (inside and box["x"] + box["width"] <= width + 0.5 and box["y"] + box["height"] <= height + 0.5):
                outside.append(f"{selector} at {box}")
    return outside
