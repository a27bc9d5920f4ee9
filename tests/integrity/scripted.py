"""A scripted rater over real HTTP: its own cookie jar, the pages' forms read with regular expressions."""

from __future__ import annotations

import re
from dataclasses import dataclass
from http.cookiejar import CookieJar
from urllib.error import HTTPError
from urllib.parse import urlencode
from urllib.request import HTTPCookieProcessor, Request, build_opener

CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
ASSIGNMENT = re.compile(r'name="assignment" value="([^"]+)"')
IMAGE = re.compile(r'src="(/i/[^"]+)"')
ALL_ONE = {"text": "1", "image": "1", "overall": "1"}


@dataclass(frozen=True)
class Reply:
    status: int
    url: str
    headers: dict
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


class ScriptedRater:
    def __init__(self, base_url: str):
        self.base_url = base_url
        self.cookies = CookieJar()
        self.opener = build_opener(HTTPCookieProcessor(self.cookies))
        self.home = ""  # the rater's own page, once admitted

    def get(self, path: str) -> Reply:
        return self._send(path)

    def post(self, path: str, fields: dict) -> Reply:
        return self._send(path, urlencode(fields).encode())

    def _send(self, path: str, data: bytes | None = None) -> Reply:
        url = path if path.startswith("http") else self.base_url + path
        try:
            with self.opener.open(Request(url, data=data), timeout=30) as response:
                return Reply(response.status, response.url, dict(response.headers), response.read())
        except HTTPError as error:
            return Reply(error.code, error.url, dict(error.headers), error.read())

    def enter(self, link_path: str) -> Reply:
        """Open an entry link; on success the rater's own page is remembered."""
        reply = self.get(link_path)
        if reply.status == 200 and "/r/" in reply.url:
            self.home = reply.url.removeprefix(self.base_url)
        return reply

    def consent_and_start(self) -> Reply:
        page = self.get(self.home)
        token = CSRF.search(page.text).group(1)
        self.post(self.home + "consent", {"consent": "yes", "csrfmiddlewaretoken": token})
        return self.post(self.home + "start", {"csrfmiddlewaretoken": token})

    def page(self) -> Reply:
        return self.get(self.home)

    def answer(self, page: Reply, values: dict = ALL_ONE) -> Reply:
        fields = {
            "assignment": ASSIGNMENT.search(page.text).group(1),
            "csrfmiddlewaretoken": CSRF.search(page.text).group(1),
            "response_ms": "3000",
            **values,
        }
        return self.post(self.home + "answer", fields)


def assignment_token(page: Reply) -> str | None:
    found = ASSIGNMENT.search(page.text)
    return found.group(1) if found else None


def image_paths(page: Reply) -> list[str]:
    return IMAGE.findall(page.text)
