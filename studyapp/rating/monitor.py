"""How a study's data collection is going: answers per hour, active raters, pairs remaining, projected finish.

Read from the database on each call (a few aggregate queries), for the set-up page's live monitor.
"""

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from django.db.models import F, Q, Sum
from django.utils import timezone

from studyapp.models import Answer, Assignment, Pair, Study

RATE_WINDOW = timedelta(hours=1)
ACTIVE_WINDOW = timedelta(minutes=10)


@dataclass(frozen=True)
class CollectionStatus:
    state: str
    answers: int
    answers_last_hour: int
    active_raters: int
    pairs_remaining: int
    ratings_remaining: int
    projected_finish: datetime | None
    measured_at: datetime

    @property
    def hours_left(self) -> float | None:
        if self.projected_finish is None:
            return None
        return max((self.projected_finish - self.measured_at).total_seconds(), 0) / 3600

    def as_dict(self) -> dict:
        data = asdict(self)
        for name in ("projected_finish", "measured_at"):
            data[name] = data[name].isoformat() if data[name] else None
        hours = self.hours_left
        return {**data, "hours_left": None if hours is None else round(hours, 2)}


def collection_status(study: Study, now: datetime | None = None) -> CollectionStatus:
    """The monitor's numbers; the finish is projected from the last hour's pace (none without answers in it)."""
    now = now or timezone.now()
    answers = Answer.objects.filter(pair__study=study)
    last_hour = answers.filter(submitted__gt=now - RATE_WINDOW).count()
    regular = Pair.objects.filter(study=study, kind=Pair.Kind.REGULAR, ratings_count__lt=F("target_ratings"))
    remaining = regular.aggregate(left=Sum(F("target_ratings") - F("ratings_count")))["left"] or 0
    finish = None
    if remaining == 0:
        finish = now
    elif last_hour and study.state == Study.State.PUBLISHED:
        finish = now + RATE_WINDOW * (remaining / last_hour)
    return CollectionStatus(
        state=study.state,
        answers=answers.count(),
        answers_last_hour=last_hour,
        active_raters=_active_raters(study, now),
        pairs_remaining=regular.count(),
        ratings_remaining=remaining,
        projected_finish=finish,
        measured_at=now,
    )


def _active_raters(study: Study, now: datetime) -> int:
    """Raters who answered in the last few minutes or hold a live lease now."""
    recent = Q(answers__submitted__gt=now - ACTIVE_WINDOW)
    holding = Q(assignments__state=Assignment.State.LEASED, assignments__expires__gt=now)
    return study.raters.filter(recent | holding).distinct().count()
