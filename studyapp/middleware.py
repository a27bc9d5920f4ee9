"""Request guards that hold for every page: malformed input is a 400, a database outage is a 503,
and every HTML answer carries a Content-Security-Policy.

The error pages render without touching the database (no user, no session), so they still work
while the database is the thing that failed.
"""

from __future__ import annotations

import logging
import sys

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DataError, InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.template import loader

logger = logging.getLogger(__name__)

OUTAGE_RETRY_SECONDS = 10
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
RATER_PREFIXES = ("/s/", "/r/", "/i/", "/p/")
# Rater pages load only their own scripts, styles and images; nothing inline, no frames, no plugins.
RATER_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "font-src 'self'; base-uri 'none'; frame-ancestors 'none'"
)
# Staff pages and the admin: the same, but the admin's widgets and our tables use inline style attributes.
STAFF_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
)


def client_address(request: HttpRequest) -> str:
    """The client's address: REMOTE_ADDR, or behind our proxy (BEHIND_PROXY=1) the address it forwards.

    The proxy must overwrite X-Forwarded-For with the address it saw (docs/deployment.md), so the
    value cannot be chosen by the client.
    """
    if settings.BEHIND_PROXY:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")[-1].strip()
        if forwarded:
            return forwarded
    return request.META.get("REMOTE_ADDR", "")


def _has_nul(values) -> bool:
    return any("\x00" in value for value in values)


def _malformed_part(request: HttpRequest) -> str | None:
    """Which part of the request holds a NUL character, which no token, id or text here may contain."""
    if "\x00" in request.path:
        return "the address"
    if _has_nul(request.GET.keys()) or _has_nul(value for values in request.GET.lists() for value in values[1]):
        return "a query parameter"
    if _has_nul(request.COOKIES.values()):
        return "a cookie"
    if request.method == "POST" and request.content_type in FORM_TYPES:
        fields = request.POST
        if _has_nul(fields.keys()) or _has_nul(value for values in fields.lists() for value in values[1]):
            return "a form field"
    return None


def error_page(status: int, title: str, text: str) -> HttpResponse:
    body = loader.render_to_string("error.html", {"title": title, "text": text})
    return HttpResponse(body, status=status)


def bad_request(text: str) -> HttpResponse:
    return error_page(400, "Bad request", text)


def outage_page(request: HttpRequest) -> HttpResponse:
    """Answered while the database cannot be reached. It sets and clears no cookie, so the rater's
    place (their link and their cookie) is exactly as it was, and retrying the same address resumes."""
    context = {"retry": _retry_address(request), "retry_seconds": OUTAGE_RETRY_SECONDS}
    body = loader.render_to_string("503.html", context)
    response = HttpResponse(body, status=503)
    response["Retry-After"] = str(OUTAGE_RETRY_SECONDS)
    response["Cache-Control"] = "no-store"
    return response


def _retry_address(request: HttpRequest) -> str:
    """The same page for a GET; for a rater's form post, their own page (which shows the same pair)."""
    if request.method in ("GET", "HEAD"):
        return request.get_full_path()
    parts = request.path.split("/")
    if len(parts) > 3 and parts[1] == "r":
        return f"/r/{parts[2]}/"
    return ""


class RequestGuardMiddleware:
    """Refuses NUL characters up front and turns database failures into a clear 400 or 503."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        part = _malformed_part(request)
        if part:
            return bad_request(f"The request is malformed: {part} contains a NUL character.")
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        return database_failure_response(request, exception)


def database_failure_response(request: HttpRequest, exception: BaseException | None) -> HttpResponse | None:
    if isinstance(exception, DataError):
        return bad_request("A value in the request is out of range or cannot be stored.")
    if isinstance(exception, (OperationalError, InterfaceError)):
        logger.warning("database unavailable: %s", exception)
        return outage_page(request)
    return None


def bad_request_page(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler400: an upload over its size says which limit it broke; other refusals say no more."""
    if isinstance(exception, RequestDataTooBig):
        return bad_request(f"The request is too large: {exception}.")
    return HttpResponse(loader.render_to_string("400.html"), status=400)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: a database outage reached outside a view (a middleware) still answers 503."""
    found = database_failure_response(request, sys.exc_info()[1])
    if found is not None:
        return found
    return HttpResponse(loader.render_to_string("500.html"), status=500)


class ContentSecurityPolicyMiddleware:
    """A strict policy on rater pages, a slightly looser one (inline styles) on the rest."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            rater = request.path.startswith(RATER_PREFIXES)
            response["Content-Security-Policy"] = RATER_POLICY if rater else STAFF_POLICY
        return response
