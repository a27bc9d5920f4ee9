"""Admission as a hostile visitor meets it over HTTP: only the ways in a study accepts, within limits."""

import pytest

from studyapp.models import Rater
from studyapp.rating.admission import create_invites
from tests.integrity.scripted import ScriptedRater
from tests.rating.factories import published_study

pytestmark = pytest.mark.services

PID, PROLIFIC_STUDY, SESSION = "60a1b2c3d4e5f60718293a4b", "0123456789abcdef01234567", "fedcba9876543210fedcba98"


def prolific_link(study, pid=PID, study_id=PROLIFIC_STUDY, session=SESSION) -> str:
    return f"/s/{study.open_link_token}/?PROLIFIC_PID={pid}&STUDY_ID={study_id}&SESSION_ID={session}"


def test_an_invite_only_study_makes_no_rater_from_its_bare_link(live_server_url):
    study = published_study(accept_open_link=False)
    create_invites(study, ["alice-01"])
    bare = [ScriptedRater(live_server_url).enter(f"/s/{study.open_link_token}/") for _ in range(20)]
    assert {reply.status for reply in bare} == {403}
    assert "invitation" in bare[0].text
    invited = ScriptedRater(live_server_url)
    assert invited.enter(f"/s/{study.open_link_token}/?invite=alice-01").status == 200
    assert Rater.objects.filter(study=study).count() == 1


def test_new_visitors_from_one_address_are_held_at_the_limit(start_gunicorn):
    url = start_gunicorn(RATER_NEW_PER_ADDRESS_PER_MINUTE=5)
    study = published_study()
    replies = [ScriptedRater(url).enter(f"/s/{study.open_link_token}/") for _ in range(12)]
    assert [reply.status for reply in replies] == [200] * 5 + [429] * 7
    assert replies[-1].headers["Retry-After"] == "60" and "try the link again in a minute" in replies[-1].text
    assert Rater.objects.filter(study=study).count() == 5


def test_raters_at_once_are_held_at_the_limit_and_returning_ones_still_resume(start_gunicorn):
    url = start_gunicorn(RATER_MAX_ACTIVE=3)
    study = published_study()
    admitted = [ScriptedRater(url) for _ in range(3)]
    assert [rater.enter(f"/s/{study.open_link_token}/").status for rater in admitted] == [200] * 3
    late = ScriptedRater(url).enter(f"/s/{study.open_link_token}/")
    assert late.status == 429 and "try again in a few minutes" in late.text
    assert admitted[0].enter(f"/s/{study.open_link_token}/").status == 200  # by cookie, not a new rater
    assert Rater.objects.filter(study=study).count() == 3


def test_invented_or_foreign_prolific_ids_are_refused(live_server_url):
    study = published_study(accept_prolific=True, prolific_study_id=PROLIFIC_STUDY)
    visitor = ScriptedRater(live_server_url)
    assert visitor.enter(prolific_link(study, pid="made-up-participant")).status == 400
    assert visitor.enter(prolific_link(study, session="")).status == 400
    assert visitor.enter(prolific_link(study, study_id="f" * 24)).status == 403
    assert not Rater.objects.filter(study=study).exists()


def test_a_known_pid_cannot_take_over_the_participant_from_another_browser(live_server_url):
    study = published_study(accept_prolific=True, prolific_study_id=PROLIFIC_STUDY)
    participant = ScriptedRater(live_server_url)
    assert participant.enter(prolific_link(study)).status == 200
    participant.consent_and_start()
    attacker = ScriptedRater(live_server_url)
    refused = attacker.enter(prolific_link(study, session="0" * 24))
    assert refused.status == 403 and "another browser" in refused.text
    assert attacker.enter(prolific_link(study)).status == 403  # the same session id does not help either
    rater = Rater.objects.get(study=study)
    assert (rater.external_id, rater.prolific_session_id) == (PID, SESSION)
    assert participant.enter(prolific_link(study)).status == 200
    assert participant.page().status == 200
