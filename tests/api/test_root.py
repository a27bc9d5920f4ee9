"""The API's root and its documentation page: /api/ lists the endpoints; Swagger UI works offline."""

import re

import pytest
from django.db import connections
from django.urls import reverse

from studyapp.api.root import LISTED

pytestmark = pytest.mark.django_db


def test_the_root_lists_every_endpoint_and_each_listed_url_answers(owner_client):
    response = owner_client.get("/api/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    endpoints = {entry["name"]: entry["url"] for entry in response.json()["endpoints"]}
    assert set(LISTED) <= set(endpoints)
    assert endpoints["api-run-detail"] == "http://testserver/api/runs/{id}/"
    for name in LISTED:
        assert owner_client.get(endpoints[name]).status_code == 200, name


@pytest.mark.parametrize("path", ["/api/", "/api/docs/"])
def test_the_root_and_docs_are_for_staff_like_the_rest_of_the_api(client, outsider, path):
    assert client.get(path).status_code in (401, 403)
    client.force_login(outsider)
    assert client.get(path).status_code == 403


def test_the_docs_page_loads_its_scripts_from_this_site_only(owner_client):
    page = owner_client.get("/api/docs/").content.decode()
    assert "http://" not in page and "https://" not in page
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css|png))"', page)
    assert assets and all(url.startswith("/static/drf_spectacular_sidecar/") for url in assets), assets
    assert '<script src="/api/docs/?script=' in page.replace("&amp;", "&")  # no inline script: the CSP holds
    for url in assets:
        response = owner_client.get(url)
        assert response.status_code == 200, url
        response.close()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_swagger_ui_renders_the_schema_with_no_request_leaving_the_machine(live_server, owner_client):
    import os
    from pathlib import Path

    from tests.conftest import need_service

    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        need_service(f"Chromium at {chromium}")
    from playwright.sync_api import sync_playwright

    outside = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(chromium),
                args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )
            context = browser.new_context()
            context.add_cookies(
                [{"name": "sessionid", "value": owner_client.cookies["sessionid"].value, "url": live_server.url}]
            )

            def only_here(route):
                if route.request.url.startswith(live_server.url):
                    return route.continue_()
                outside.append(route.request.url)
                return route.abort()

            context.route("**/*", only_here)
            page = context.new_page()
            page.goto(f"{live_server.url}{reverse('api-docs')}")
            page.wait_for_selector("text=/api/studies/{id}/results/", timeout=20_000)
            assert "human-evaluation API" in page.inner_text(".swagger-ui .info")
            browser.close()
    finally:
        connections.close_all()
    assert outside == []
