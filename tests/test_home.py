"""The front page: a map for staff, nothing about studies for anyone else."""

import pytest

from tests import factories

pytestmark = pytest.mark.django_db


def test_staff_see_their_studies_with_results_links(owner_client):
    study = factories.study_with_images(methods=2, seeds=1)
    page = owner_client.get("/").content.decode()
    assert study.title in page and f"/studies/{study.pk}/results/" in page
    assert "/runs/" in page and "/browser/" in page


def test_visitors_see_no_study(client, outsider):
    study = factories.study_with_images(methods=2, seeds=1)
    assert study.title not in client.get("/").content.decode()
    client.force_login(outsider)
    assert study.title not in client.get("/").content.decode()


def test_health_check_reaches_the_database(client):
    assert client.get("/healthz").json() == {"ok": True}
