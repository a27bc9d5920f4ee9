"""Who may rate: one rater row per person and study, whichever way they arrive (invite, Prolific, open link)."""

import re

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
