"""Hoarding over HTTP: scripted raters who lease pairs and walk away cannot end the study for others."""

from datetime import timedelta

import pytest
from django.utils import timezone

from studyapp.models import Answer, Assignment, Rater
from studyapp.rating.assignment import claim_leases
from tests.integrity.scripted import ScriptedRater, assignment_token
from tests.rating.factories import open_rater, published_study

pytestmark = pytest.mark.services


def started(url: str, study) -> ScriptedRater:
    rater = ScriptedRater(url)
    rater.enter(f"/s/{study.open_link_token}/")
    rater.consent_and_start()
    return rater


def test_sixteen_hoarders_leave_real_raters_waiting_not_done(start_gunicorn):
    url = start_gunicorn(RATER_NEW_PER_ADDRESS_PER_MINUTE=0)
    study = published_study(seeds=8, ratings_per_pair=2, pairs_per_rater=10)  # 16 pairs, 32 slots
    mid = started(url, study)
    for _ in range(3):
        assert mid.answer(mid.page()).status == 200
    hoarders = [started(url, study) for _ in range(16)]
    for hoarder in hoarders:
        hoarder.page()  # leases the pair on screen and the next one, then never answers
    assert Assignment.objects.filter(state=Assignment.State.LEASED).count() + Answer.objects.count() == 32

    for _ in range(2):  # the two pairs the mid-study rater already holds
        page = mid.page()
        assert page.status == 200 and assignment_token(page)
        mid.answer(page)
    waiting = mid.page()
    assert waiting.status == 503 and "One moment" in waiting.text
    newcomer = started(url, study).page()
    assert newcomer.status == 503 and "One moment" in newcomer.text
    assert not Rater.objects.filter(completed__isnull=False).exists()


def test_an_idle_hoarders_leases_come_back_before_the_lease_time(start_gunicorn, settings):
    settings.RATER_IDLE_SECONDS = 60  # here, where the hoarder's leases are made, as on the server
    url = start_gunicorn(RATER_IDLE_SECONDS=60)
    study = published_study(seeds=1, ratings_per_pair=1, lease_seconds=900)  # two pairs, one rating each
    silent_since = timezone.now() - timedelta(seconds=61)
    hoarder = open_rater(study, "hoarder")
    held = claim_leases(hoarder, now=silent_since)  # both pairs, last touched a minute ago
    assert held.current is not None and held.upcoming is not None
    page = started(url, study).page()
    assert page.status == 200 and assignment_token(page)
