"""Who may rate: one rater row per person and study, and only by the ways in the study accepts.

Each study switches its ways in on or off (the open link, invite codes, Prolific). New raters are
limited per client address and minute and per study by how many are active at once; the address
itself is never stored, only a keyed hash of it. A Prolific participant id is one rater, and once it
is in use it is resumed only by the browser holding that rater's signed cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from studyapp.models import Assignment, Rater, Study, new_token

PROLIFIC_ID = re.compile(r"[0-9a-f]{24}")  # Prolific's participant, study and session ids
PROLIFIC_PARAMETERS = {"PROLIFIC_PID": "participant id", "STUDY_ID": "study id", "SESSION_ID": "session id"}


class AdmissionRefused(Exception):
    """A visitor who may not (or not now) become or resume a rater; the message is meant for them."""

    def __init__(self, title: str, message: str, status: int = 403, retry_after: int | None = None):
        super().__init__(message)
        self.title = title
        self.message = message
        self.status = status
        self.retry_after = retry_after


def address_key(address: str) -> str:
    """A keyed hash of a client address: enough to count arrivals, useless to find the person."""
    digest = hmac.new(settings.SECRET_KEY.encode(), f"rater-address:{address}".encode(), hashlib.sha256)
    return digest.hexdigest()[:32]


# --------------------------------------------------------------------------------------------
# The three ways in
# --------------------------------------------------------------------------------------------


def open_link_rater(study: Study, returning: Rater | None, address: str, now=None) -> Rater:
    """A visitor on the bare link: the rater their cookie names, else a new anonymous one."""
    if returning is not None:
        return returning
    if not study.accept_open_link:
        raise AdmissionRefused(
            "This link needs an invitation",
            "This study takes part only through the personal link you were sent (or through Prolific).",
        )
    return _create(study, Rater.Source.OPEN, new_token(), address, now)


def invited_rater(study: Study, code: str) -> Rater | None:
    """The rater made for this invite code; None for an unknown code."""
    if not study.accept_invites:
        raise AdmissionRefused("Invitations are not accepted", "This study does not take part through invitations.")
    return Rater.objects.filter(study=study, source=Rater.Source.INVITE, external_id=code[:200]).first()


def prolific_rater(study: Study, parameters, returning: Rater | None, address: str, now=None) -> Rater:
    """The rater of a Prolific participant of this study; a PID in use only comes back in its own browser."""
    ids = _checked_prolific_ids(study, parameters)
    existing = Rater.objects.filter(study=study, source=Rater.Source.PROLIFIC, external_id=ids["PROLIFIC_PID"]).first()
    if existing is None:
        try:
            return _create(study, Rater.Source.PROLIFIC, ids["PROLIFIC_PID"], address, now, ids["SESSION_ID"])
        except IntegrityError:  # the same id arrived twice at once: the other request has it
            existing = None
    if existing is None or returning is None or returning.pk != existing.pk:
        raise AdmissionRefused(
            "This participant has already started",
            "This Prolific participant started the study in another browser; please continue there. "
            "If that was not you, contact the study team through Prolific.",
        )
    if existing.prolific_session_id != ids["SESSION_ID"]:
        raise AdmissionRefused(
            "This session has ended", "This link belongs to another Prolific session of this study than yours."
        )
    return existing


def _checked_prolific_ids(study: Study, parameters) -> dict[str, str]:
    if not study.accept_prolific:
        raise AdmissionRefused("Prolific is not used here", "This study does not take part through Prolific.")
    ids = {}
    for name, label in PROLIFIC_PARAMETERS.items():
        value = str(parameters.get(name, "")).strip().lower()
        if not PROLIFIC_ID.fullmatch(value):
            raise AdmissionRefused(
                "This link is not valid", f"The Prolific {label} in the link is missing or malformed.", status=400
            )
        ids[name] = value
    if ids["STUDY_ID"] != study.prolific_study_id.lower():
        raise AdmissionRefused("This link is not valid", "This link belongs to another Prolific study.")
    return ids


def create_invites(study: Study, codes: list[str]) -> list[Rater]:
    """One invite rater per code (existing codes are kept); the link is /s/<open_link_token>/?invite=<code>."""
    raters = []
    for code in codes:
        rater, _ = Rater.objects.get_or_create(study=study, source=Rater.Source.INVITE, external_id=code)
        raters.append(rater)
    return raters


# --------------------------------------------------------------------------------------------
# Limits on new raters
# --------------------------------------------------------------------------------------------


def _create(study: Study, source: str, external_id: str, address: str, now=None, session_id: str = "") -> Rater:
    now = now or timezone.now()
    key = address_key(address)
    refuse_if_over_limits(study, key, now)
    with transaction.atomic():
        return Rater.objects.create(
            study=study,
            source=source,
            external_id=external_id,
            admitted_from=key,
            prolific_study_id=study.prolific_study_id if session_id else "",
            prolific_session_id=session_id,
            created=now,
        )


def refuse_if_over_limits(study: Study, key: str, now) -> None:
    per_minute = settings.RATER_NEW_PER_ADDRESS_PER_MINUTE
    recent = Rater.objects.filter(admitted_from=key, created__gt=now - timedelta(minutes=1))
    if per_minute and recent.count() >= per_minute:
        raise AdmissionRefused(
            "Please wait a minute",
            "Many people joined from your network in the last minute. Please try the link again in a minute.",
            status=429,
            retry_after=60,
        )
    most = settings.RATER_MAX_ACTIVE
    if most and active_raters(study, now) >= most:
        raise AdmissionRefused(
            "The study is busy",
            "As many people as the study can take at once are rating now. Please try again in a few minutes.",
            status=429,
            retry_after=settings.RATER_IDLE_SECONDS,
        )


def active_raters(study: Study, now) -> int:
    """Raters still going: holding a live lease, or admitted within the idle time (consent, instructions)."""
    live = Assignment.objects.filter(rater=OuterRef("pk"), state=Assignment.State.LEASED, expires__gt=now)
    recent = now - timedelta(seconds=settings.RATER_IDLE_SECONDS)
    return (
        Rater.objects.filter(study=study, completed__isnull=True, screened_out__isnull=True)
        .filter(Q(created__gt=recent) | Exists(live))
        .count()
    )


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
