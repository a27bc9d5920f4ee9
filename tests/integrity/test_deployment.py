"""The production profile: no server without SECRET_KEY, `make serve` is gunicorn with DEBUG=0, a
Content-Security-Policy, admin login throttling, and uploads capped while they stream."""

import os
import socket
import subprocess
import sys
import uuid

import pytest

from tests.conftest import need_service
from tests.integrity.conftest import PROJECT_ROOT, free_port
from tests.integrity.http import LiveClient
from tests.rating.factories import open_rater, published_study

pytestmark = pytest.mark.services


def test_gunicorn_refuses_to_start_with_debug_off_and_no_secret_key(tmp_path):
    env = {key: value for key, value in os.environ.items() if key not in ("SECRET_KEY", "DEBUG")}
    env.update(DJANGO_SETTINGS_MODULE="studyapp.settings", DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    command = [sys.executable, "-m", "gunicorn", "studyapp.wsgi:application", "--bind", f"127.0.0.1:{free_port()}"]
    done = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "SECRET_KEY: required when DEBUG=0" in done.stderr


def _make_serve_commands(**env) -> str:
    clean = {key: value for key, value in os.environ.items() if key != "DEBUG"}
    done = subprocess.run(
        ["make", "-n", "serve"], cwd=PROJECT_ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_make_serve_runs_gunicorn_with_debug_off_unless_asked():
    production = _make_serve_commands()
    assert "DEBUG=0" in production and "gunicorn studyapp.wsgi:application" in production
    assert "runserver" not in production
    assert "runserver" in _make_serve_commands(DEBUG="1")


def test_rater_pages_carry_a_strict_policy_and_staff_pages_one(live_server_url):
    study = published_study()
    rater = open_rater(study)
    client = LiveClient(live_server_url)
    rater_policy = client.get(f"/r/{rater.token}/").headers["Content-Security-Policy"]
    assert "script-src 'self'" in rater_policy and "frame-ancestors 'none'" in rater_policy
    assert "unsafe-inline" not in rater_policy and "default-src 'none'" in rater_policy
    admin_policy = client.get("/admin/login/").headers["Content-Security-Policy"]
    assert "script-src 'self'" in admin_policy and "unsafe-inline" not in admin_policy.split("style-src")[0]


def test_the_nth_wrong_admin_password_locks_the_login(start_gunicorn, owner):
    url = start_gunicorn(AXES_FAILURE_LIMIT=3)
    client = LiveClient(url)
    for _ in range(2):
        wrong = client.admin_login("owner", "not-the-password")
        assert wrong.status == 200 and "Please enter the correct username" in wrong.body
    locked = client.admin_login("owner", "not-the-password")
    assert locked.status == 429 and "Too many failed sign-ins" in locked.body
    assert client.admin_login("owner", "owner-pass-123").status == 429  # even the right password, for now
    assert LiveClient(url).get("/admin/login/").status == 200  # the page itself still answers


def _multipart(fields: dict, files: dict) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, (filename, data) in files.items():
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
        parts.append(head.encode() + b"Content-Type: image/png\r\n\r\n" + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def test_an_oversized_photo_is_refused_while_it_streams(start_gunicorn, owner):
    url = start_gunicorn(MAX_UPLOAD_BYTES=100_000)
    client = LiveClient(url)
    assert client.admin_login("owner", "owner-pass-123").status == 302
    form = client.get("/admin/studyapp/concept/add/")
    fields = {"csrfmiddlewaretoken": form.csrf_token(), "slug": "dog", "concept_token": "sks", "superclass": "dog"}
    body, content_type = _multipart(fields, {"photos": ("big.png", b"\x89PNG" + b"0" * 150_000)})
    headers = {"Content-Type": content_type, "Referer": url + "/admin/studyapp/concept/add/"}
    answer = client.request("POST", "/admin/studyapp/concept/add/", body, headers)
    assert answer.status == 400
    assert "big.png: more than 100,000 bytes, the limit is 100,000 per file" in answer.body


def test_an_upload_declared_too_large_is_refused_before_its_body_is_sent(start_gunicorn):
    url = start_gunicorn(MAX_UPLOAD_BYTES=100_000, MAX_UPLOAD_REQUEST_BYTES=1_000_000)
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as connection:
        connection.sendall(
            b"POST /admin/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 10000000000\r\n\r\n--x\r\n"
        )
        answer = _read_until_closed(connection)  # answered with the body still unsent
    assert answer.startswith("HTTP/1.1 400")
    assert "the limit is 1,000,000 per request" in answer


def _read_until_closed(connection: socket.socket) -> str:
    received = b""
    while b"</html>" not in received:
        chunk = connection.recv(65536)
        if not chunk:
            break
        received += chunk
    return received.decode("latin-1")


@pytest.mark.browser
def test_no_page_breaks_its_content_security_policy_in_chromium(start_gunicorn, owner):
    from tests.rating.conftest import CHROMIUM, CHROMIUM_FLAGS

    if not CHROMIUM.exists():
        need_service(f"Chromium at {CHROMIUM}")
    study = published_study()
    pages = [
        "/admin/",
        f"/admin/studyapp/study/{study.pk}/change/",
        "/admin/studyapp/method/add/",
        "/admin/studyapp/generationrun/",
        "/runs/",
        f"/studies/{study.pk}/results/",
        f"/s/{study.open_link_token}/",
    ]
    url = start_gunicorn()
    from playwright.sync_api import sync_playwright

    refused = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        page = browser.new_page()
        page.on("console", lambda message: refused.append(message.text) if "Content Security" in message.text else None)
        page.goto(url + "/admin/login/")
        page.fill("#id_username", "owner")
        page.fill("#id_password", "owner-pass-123")
        page.click("input[type=submit]")
        page.wait_for_url(url + "/admin/")
        for path in pages:
            response = page.goto(url + path, wait_until="load")
            assert response.status == 200, path
            assert response.headers.get("content-security-policy"), path
        browser.close()
    assert refused == []
