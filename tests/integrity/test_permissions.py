"""Staff pages and the API check model permissions (view, export, change), and run actions refuse
a run in the wrong state: against the live gunicorn on PostgreSQL."""

import json

import pytest
from django.contrib.auth.models import Permission

from studyapp.models import GenerationRun
from tests import factories
from tests.integrity.http import LiveClient
from tests.rating.factories import open_rater, published_study

pytestmark = pytest.mark.services


@pytest.fixture
def staff_user(django_user_model):
    return django_user_model.objects.create_user("staffer", "s@example.org", "staffer-pass-123", is_staff=True)


def grant(user, *codenames):
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="studyapp", codename__in=codenames))


def api_post(client: LiveClient, path: str):
    return client.request("POST", path, b"", {"X-CSRFToken": client.cookie("csrftoken") or ""})


def staff_paths(study, run) -> list[str]:
    return [
        f"/studies/{study.pk}/results/",
        f"/studies/{study.pk}/export/answers.csv",
        f"/studies/{study.pk}/export/results.json",
        "/runs/",
        f"/runs/{run.pk}/",
        "/browser/",
        f"/api/studies/{study.pk}/results/",
        f"/api/studies/{study.pk}/export/answers.csv",
        "/api/runs/",
    ]


def test_anonymous_visitors_and_raters_reach_no_staff_page(live_server_url):
    study = published_study()
    rater = open_rater(study)
    run = factories.run(factories.method())
    visitor = LiveClient(live_server_url)
    assert visitor.get(f"/r/{rater.token}/").status == 200  # now holding a rater's cookie and session
    for path in staff_paths(study, run):
        answer = visitor.get(path)
        if path.startswith("/api/"):
            assert answer.status == 403, path
        else:
            assert answer.status == 302 and "/admin/login/" in answer.location, path
    assert api_post(visitor, f"/api/runs/{run.pk}/cancel/").status == 403


def test_staff_without_permissions_get_403_on_exports_results_and_run_actions(live_server_url, staff_user):
    study = published_study()
    run = GenerationRun.objects.create(method=factories.method(), state=GenerationRun.State.RUNNING)
    client = LiveClient(live_server_url)
    assert client.admin_login("staffer", "staffer-pass-123").status == 302
    for path in staff_paths(study, run):
        answer = client.get(path)
        assert answer.status == 403, path
        assert "lacks the permission studyapp." in answer.body, path
    assert client.get(f"/api/studies/{study.pk}/export/answers.csv").body.count("export_study") == 1
    refused = api_post(client, f"/api/runs/{run.pk}/cancel/")
    assert refused.status == 403 and "change_generationrun" in refused.body
    run.refresh_from_db()
    assert run.state == GenerationRun.State.RUNNING


def test_each_permission_opens_exactly_its_pages(live_server_url, staff_user):
    study = published_study()
    grant(staff_user, "view_study")
    client = LiveClient(live_server_url)
    client.admin_login("staffer", "staffer-pass-123")
    assert client.get(f"/studies/{study.pk}/results/").status == 200
    assert client.get(f"/api/studies/{study.pk}/results/").status == 200
    assert client.get(f"/studies/{study.pk}/export/answers.csv").status == 403
    grant(staff_user, "export_study")
    exported = client.get(f"/api/studies/{study.pk}/export/answers.csv")
    assert exported.status == 200 and exported.body.startswith("answer,rater,")


def test_cancelling_a_finished_run_is_refused_and_the_run_stays_finished(live_server_url, staff_user):
    grant(staff_user, "view_generationrun", "change_generationrun")
    done = GenerationRun.objects.create(method=factories.method(), state=GenerationRun.State.DONE)
    running = GenerationRun.objects.create(method=factories.method(), state=GenerationRun.State.RUNNING)
    client = LiveClient(live_server_url)
    client.admin_login("staffer", "staffer-pass-123")
    for path in (f"/api/runs/{done.pk}/cancel/", f"/runs/{done.pk}/cancel/"):
        refused = api_post(client, path)
        assert refused.status == 409, (path, refused.body)
        assert "is done; cancel applies only to queued, running, failed runs" in json.loads(refused.body)["detail"]
    done.refresh_from_db()
    assert done.state == GenerationRun.State.DONE
    assert api_post(client, f"/api/runs/{done.pk}/resume/").status == 409
    cancelled = api_post(client, f"/api/runs/{running.pk}/cancel/")
    assert cancelled.status == 200 and json.loads(cancelled.body)["progress"]["state"] == "cancelled"
