"""Malformed input is a 400 or 404 with a message, and a database outage is a friendly 503 that keeps
the rater's place: against the live gunicorn (DEBUG=0) on PostgreSQL."""

import pytest

from studyapp.models import Method, MetricScore, Study
from tests.integrity.conftest import free_port
from tests.integrity.http import LiveClient
from tests.rating.factories import open_rater, published_study
from tests.results.factories import study_with_answers

pytestmark = pytest.mark.services


@pytest.fixture
def study():
    return published_study()


@pytest.fixture
def rater(study):
    return open_rater(study)


def assert_refused_with_message(answer, statuses=(400, 404)):
    assert answer.status in statuses, (answer.status, answer.body[:500])
    assert "<h1>" in answer.body and "Traceback" not in answer.body


MALFORMED_PATHS = [
    "/s/%00/",
    "/r/%00/",
    "/r/%00/consent",
    "/i/%00/1",
    "/p/%00",
    "/r/" + "a" * 1000 + "/",
    "/i/" + "b" * 1000 + "/1",
    "/i/abc/99999999999999999999999",
    "/no-such-page/%00",
    "/?q=%00",
]


def test_malformed_tokens_and_parameters_are_refused_with_a_message(live_server_url, study, rater):
    client = LiveClient(live_server_url)
    for path in MALFORMED_PATHS:
        assert_refused_with_message(client.get(path))
    link = f"/s/{study.open_link_token}/"
    for query in ("invite=%00", "PROLIFIC_PID=%00", "PROLIFIC_PID=x&STUDY_ID=%00", "%00=1"):
        answer = client.get(f"{link}?{query}")
        assert_refused_with_message(answer, statuses=(400,))
        assert "NUL" in answer.body
    assert_refused_with_message(client.get(f"{link}?invite={'x' * 1000}"))
    assert client.get("/r/" + "a" * 5000 + "/").status == 414  # gunicorn's request-line limit
    assert client.get(link, headers={"Cookie": "rater_1=a\x00b"}).status == 400


def test_a_nul_in_any_answer_field_is_a_400(live_server_url, rater):
    client = LiveClient(live_server_url)
    token = client.get(f"/r/{rater.token}/").csrf_token()
    for field in ("assignment", "text", "response_ms"):
        fields = {"assignment": "tok", "text": "1", "image": "1", "overall": "1", "response_ms": "1000"}
        fields.update({field: "\x00", "csrfmiddlewaretoken": token})
        answer = client.post(f"/r/{rater.token}/answer", fields)
        assert_refused_with_message(answer, statuses=(400,))
        assert "form field" in answer.body


def test_staff_pages_refuse_out_of_range_ids_and_odd_digits(live_server_url, owner):
    client = LiveClient(live_server_url)
    assert client.admin_login("owner", "owner-pass-123").status == 302
    for path in ("/runs/99999999999999999999/", "/studies/99999999999999999999/results/", "/browser/?seed=%C2%B2"):
        answer = client.get(path)
        assert answer.status in (200, 400, 404), (path, answer.status)


def test_a_database_outage_is_a_friendly_503_that_keeps_the_raters_place(start_gunicorn, study):
    serving = start_gunicorn()
    unreachable = f"postgres://postgres@127.0.0.1:{free_port()}/gone"
    outage = start_gunicorn(DATABASE_URL=unreachable, DATABASE_CONNECT_TIMEOUT=2)
    rater = LiveClient(serving)
    entered = rater.get(f"/s/{study.open_link_token}/")
    assert entered.status == 302
    home = entered.location
    cookie = rater.cookie(f"rater_{study.pk}")
    assert cookie and rater.get(home).status == 200

    during = LiveClient(outage, cookies=rater.cookies)  # the same browser, while the database is away
    for answer in (during.get(home), during.get(f"/s/{study.open_link_token}/")):
        assert answer.status == 503
        assert "One moment" in answer.body and "tries again" in answer.body
        assert "Set-Cookie" not in answer.headers
        assert answer.headers["Retry-After"]
    token = rater.get(home).csrf_token()
    posted = during.post(home + "answer", {"assignment": "x", "text": "1", "csrfmiddlewaretoken": token})
    assert posted.status == 503 and f'href="{home}"' in posted.body

    assert rater.cookie(f"rater_{study.pk}") == cookie
    assert rater.get(home).status == 200
    assert rater.get(f"/s/{study.open_link_token}/").location == home


def test_mathtext_in_a_title_or_method_name_does_not_break_the_pareto_plot(live_server_url, owner):
    study = study_with_answers(raters=0, methods=2)
    Study.objects.filter(pk=study.pk).update(title=r"$\frac$ study $x^$")
    for comparison in study.comparisons.all():
        for method, value in ((comparison.method_a, 0.3), (comparison.method_b, 0.2)):
            image = method.images.first()
            MetricScore.objects.create(image=image, metric="clip_ts", value=value)
            MetricScore.objects.create(image=image, metric="clip_is", value=0.9 - value)
    Method.objects.filter(pk=comparison.method_a_id).update(name=r"m$\frac$")
    client = LiveClient(live_server_url)
    client.admin_login("owner", "owner-pass-123")
    answer = client.get(f"/studies/{study.pk}/pareto.svg")
    assert answer.status == 200 and answer.headers["Content-Type"] == "image/svg+xml"
    assert r"$\frac$ study $x^$" in answer.body and r"m$\frac$" in answer.body
