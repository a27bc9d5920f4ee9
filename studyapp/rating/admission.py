"""Who may rate: one rater row per person and study, whichever way they arrive (invite, Prolific, open link)."""

import re
import secrets
from urllib.parse import urlencode

from django.db import IntegrityError

from studyapp.models import Rater, Study

PROLIFIC_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


def admit(study: Study, source: str, external_id: str) -> Rater:
    """The rater for this identity, created on first arrival; the same person twice at once gets one row."""
    try:
        rater, _ = Rater.objects.get_or_create(study=study, source=source, external_id=external_id)
    except IntegrityError:
        rater = Rater.objects.get(study=study, source=source, external_id=external_id)
    return rater


def invited_rater(study: Study, code: str) -> Rater | None:
    return Rater.objects.filter(study=study, source=Rater.Source.INVITE, external_id=code[:200]).first()


def record_prolific_session(rater: Rater, study_id: str, session_id: str) -> None:
    """Keep Prolific's study and session ids (for their completion checks); blank values change nothing."""
    session = {"prolific_study_id": study_id[:100], "prolific_session_id": session_id[:100]}
    changed = {name: value for name, value in session.items() if value and getattr(rater, name) != value}
    if changed:
        Rater.objects.filter(pk=rater.pk).update(**changed)


def create_invites(study: Study, codes: list[str]) -> list[Rater]:
    """One invite rater per code (existing codes are kept); the link is /s/<open_link_token>/?invite=<code>."""
    raters = []
    for code in codes:
        rater, _ = Rater.objects.get_or_create(study=study, source=Rater.Source.INVITE, external_id=code)
        raters.append(rater)
    return raters


INVITE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I; never a character a spreadsheet reads as a formula
INVITE_LENGTH = 10
MAX_INVITES = 10000


def make_invites(study: Study, count: int) -> list[Rater]:
    """`count` new random invite codes for the study (1 to MAX_INVITES)."""
    if not 1 <= count <= MAX_INVITES:
        raise ValueError(f"number of invites: expected 1 to {MAX_INVITES}, got {count}")
    codes = ["".join(secrets.choice(INVITE_ALPHABET) for _ in range(INVITE_LENGTH)) for _ in range(count)]
    return create_invites(study, codes)


def invite_query(code: str) -> str:
    return urlencode({"invite": code})


# Prolific replaces these placeholders with the participant's, the study's and the session's ids.
PROLIFIC_QUERY = "PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"
