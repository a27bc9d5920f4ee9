"""Property: no URL of ours answers 5xx, whatever fills its parameters, query and form fields.

The URL patterns are read from the resolver (ours, and the admin views studyapp adds), so a new page
is fuzzed without being listed here. Each persona (anonymous, rater, staff) gets its own run; the
values mix real ids and tokens with hostile text (NUL, long, odd digits, huge numbers). Examples
are bounded and derandomized, so the run is quick and the same every time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, urlencode

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RoutePattern
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from studyapp.models import AnalysisSnapshot, Assignment, GenerationRun, Method, ReferenceImage
from studyapp.rating.assignment import claim_leases
from tests.rating.factories import open_rater, published_study

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

PARAMETER = re.compile(r"<(?:(?P<converter>\w+):)?(?P<name>\w+)>")
FUZZ = settings(
    max_examples=12,  # per route and persona: about 500 requests per persona
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
QUERY_NAMES = [
    "invite",
    "PROLIFIC_PID",
    "STUDY_ID",
    "SESSION_ID",
    "procedure",
    "random_factors",
    "multiplicity",
    "n_resamples",
    "seed",
    "confidence_level",
    "alpha",
    "weights",
    "ties",
    "concept",
    "prompt_set",
    "method",
    "batches",
    "page",
    "q",
    "format",
]
FORM_NAMES = [
    "assignment",
    "text",
    "image",
    "overall",
    "response_ms",
    "consent",
    "label",
    "count",
    "csrfmiddlewaretoken",
    "method",
    "prompt_set",
    "concepts",
    "seed_indices",
    "steps",
    "name",
    "sampler",
    "grid",
]
SLUGS = ["cancel", "resume", "requeue-failed", "results", "answers", "csv", "json", "tex", "md", "subject", "prompt"]

hostile_text = st.one_of(
    st.text(min_size=1, max_size=40),
    st.sampled_from(["\x00", "a\x00b", "²", "٣", "-1", "1e999", "NaN", "null", "../../etc/passwd", "%00", "x" * 600]),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
)


@dataclass
class Route:
    route: str
    methods: tuple[str, ...]


def our_routes() -> list[Route]:
    found = []
    for route, pattern in _walk(get_resolver().url_patterns):
        module = getattr(pattern.callback, "__module__", "") or ""
        if not isinstance(pattern.pattern, RoutePattern):
            continue  # the media route (local use only) and the admin's own regex routes
        if route.startswith("admin/") and not module.startswith("studyapp"):
            continue  # Django's admin views: Django's to test; the ones studyapp adds are fuzzed
        found.append(Route(route, ("GET", "POST")))
    return found


def _walk(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern


@dataclass
class World:
    """Real ids and tokens for the strategies to mix with hostile values."""

    ints: list[int]
    tokens: list[str]


@pytest.fixture
def world() -> World:
    study = published_study()
    rater = open_rater(study)
    claim_leases(rater)
    run = GenerationRun.objects.first()
    ints = [study.pk, run.pk, 1, 2, 0]
    ints += list(AnalysisSnapshot.objects.values_list("pk", flat=True))
    ints += list(Method.objects.values_list("pk", flat=True))
    tokens = [study.open_link_token, rater.token]
    tokens += list(Assignment.objects.values_list("token", flat=True)) + list(
        ReferenceImage.objects.values_list("token", flat=True)
    )
    tokens += list(run.images.values_list("token", flat=True)[:2])
    return World(ints=ints, tokens=[t for t in tokens if t])


def value_for(converter: str | None, world: World):
    if converter == "int":
        return st.one_of(st.sampled_from(world.ints), st.integers(min_value=0, max_value=10**30)).map(str)
    if converter == "slug":
        return st.one_of(st.sampled_from(SLUGS), st.from_regex(r"[-a-zA-Z0-9_]{1,60}", fullmatch=True))
    if converter == "path":
        return st.one_of(st.sampled_from([str(i) for i in world.ints]), hostile_text)
    return st.one_of(st.sampled_from(world.tokens), hostile_text.filter(lambda text: "/" not in text))


@st.composite
def requests(draw, route: Route, world: World):
    path = "/" + PARAMETER.sub(lambda m: quote(draw(value_for(m["converter"], world)), safe=""), route.route)
    query = draw(st.dictionaries(st.sampled_from(QUERY_NAMES), hostile_text, max_size=3))
    method = draw(st.sampled_from(route.methods))
    form = draw(st.dictionaries(st.sampled_from(FORM_NAMES), hostile_text, max_size=4)) if method == "POST" else {}
    return method, path + ("?" + urlencode(query) if query else ""), form


def assert_no_server_error(client: Client, method: str, path: str, form: dict):
    response = client.post(path, form) if method == "POST" else client.get(path)
    assert response.status_code < 500, (method, path, form, response.status_code)


@pytest.fixture
def routes() -> list[Route]:
    found = our_routes()
    assert {"s/<str:link_token>/", "r/<str:rater_token>/answer", "api/runs/<int:pk>/<slug:action>/"} <= {
        r.route for r in found
    }
    return found


def fuzz(client: Client, routes: list[Route], world: World):
    for route in routes:

        @FUZZ
        @given(requests(route, world))
        def check(request):
            assert_no_server_error(client, *request)

        check()


def test_no_url_is_a_5xx_for_an_anonymous_visitor(world, routes):
    fuzz(Client(raise_request_exception=False), routes, world)


def test_no_url_is_a_5xx_for_a_rater(world, routes):
    client = Client(raise_request_exception=False)
    rater_token = world.tokens[1]
    assert client.get(f"/r/{rater_token}/").status_code == 200
    fuzz(client, routes, world)


def test_no_url_is_a_5xx_for_staff(world, routes, owner):
    client = Client(raise_request_exception=False)
    client.force_login(owner)
    fuzz(client, routes, world)
