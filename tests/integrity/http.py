"""A small HTTP client for the live server: keeps cookies, never follows redirects, never raises on 4xx/5xx."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message
from http.cookiejar import CookieJar
from urllib.error import HTTPError
from urllib.parse import urlencode
from urllib.request import HTTPCookieProcessor, HTTPRedirectHandler, Request, build_opener

CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


class _NoRedirects(HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@dataclass
class Answer:
    status: int
    headers: Message
    body: str

    @property
    def location(self) -> str:
        return self.headers.get("Location", "")

    def csrf_token(self) -> str:
        found = CSRF_INPUT.search(self.body)
        assert found, f"no CSRF token in the page ({self.status})"
        return found.group(1)


class LiveClient:
    def __init__(self, base_url: str, timeout: float = 30, cookies: CookieJar | None = None):
        self.base_url = base_url
        self.timeout = timeout
        self.cookies = CookieJar() if cookies is None else cookies
        self._opener = build_opener(HTTPCookieProcessor(self.cookies), _NoRedirects())

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> Answer:
        request = Request(self.base_url + path, data=body, method=method, headers=headers or {})
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return Answer(response.status, response.headers, response.read().decode("utf-8", "replace"))
        except HTTPError as error:
            return Answer(error.code, error.headers, error.read().decode("utf-8", "replace"))

    def get(self, path: str, headers: dict | None = None) -> Answer:
        return self.request("GET", path, headers=headers)

    def post(self, path: str, fields: dict | list | None = None, headers: dict | None = None) -> Answer:
        body = urlencode(fields or {}, doseq=True).encode()
        form = {"Content-Type": "application/x-www-form-urlencoded", "Referer": self.base_url + path}
        return self.request("POST", path, body, {**form, **(headers or {})})

    def cookie(self, name: str) -> str | None:
        return next((cookie.value for cookie in self.cookies if cookie.name == name), None)

    def admin_login(self, username: str, password: str) -> Answer:
        page = self.get("/admin/login/")
        fields = {"csrfmiddlewaretoken": page.csrf_token(), "username": username, "password": password, "next": "/"}
        return self.post("/admin/login/", fields)
