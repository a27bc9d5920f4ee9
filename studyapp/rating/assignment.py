"""The assignment engine: which pair a rater sees next, and the lease that holds it for them.

Capacity rule: a regular pair never has more answers plus live leases than its ``target_ratings``.
Every change to that sum happens while the pair's row is locked:

1. claiming locks candidate pairs (``SELECT ... FOR UPDATE SKIP LOCKED`` on Postgres), then recounts
   their live leases in a fresh statement, so a lease committed by another rater a moment ago is seen;
2. answering a live lease turns one lease into one answer (the sum stays the same; rating/answers.py);
3. answering an expired lease adds one, so it first locks the pair and checks there is still room.

A lease that runs out simply stops counting, which only frees capacity. Gold and attention pairs have
no capacity: every rater may be shown them.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.db.models import Count, Exists, F, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from studyapp.models import Assignment, Pair, Rater, Study
from studyapp.studies.checks import rater_check_counts

LOOKAHEAD = 2  # the pair on screen and the next one, whose images the page preloads
CANDIDATES = 8  # pairs locked per claim, to pick among the least rated at random
CLAIM_TRIES = 4


@dataclass(frozen=True)
class RaterLeases:
    """What a rater holds: the lease on screen, the one after it, and how many of their quota they answered."""

    current: Assignment | None
    upcoming: Assignment | None
    answered: int
    quota: int
    busy: bool = False  # nothing free right now, but other raters' leases may still run out

    @property
    def finished(self) -> bool:
        return self.current is None and not self.busy


# --------------------------------------------------------------------------------------------
# Next pair
# --------------------------------------------------------------------------------------------


def claim_leases(rater: Rater, now=None) -> RaterLeases:
    """The rater's current and upcoming leases, claiming new pairs as needed; a reload gets the same ones."""
    now = now or timezone.now()
    study = rater.study
    busy = False
    for attempt in range(CLAIM_TRIES):
        with transaction.atomic():
            # The rater's row lock makes two tabs (or a double reload) claim one pair, not two.
            locked = locked_rater(rater)
            held = _Held(locked, now)
            if held.enough(study) or locked.completed or locked.screened_out:
                return held.leases(study)
            _renew_or_drop_expired(held, study, now)
            busy = _claim_until(locked, study, held, now)
        rater.left_shown = locked.left_shown
        if held.live or not busy:
            break
        time.sleep(0.005 * (attempt + 1) * random.random())
    return held.leases(study, busy=busy and not held.live)


def locked_rater(rater: Rater) -> Rater:
    """The rater's row again, locked until the transaction ends, with `shown_count` and `answered_count` attached."""

    def count(**conditions):
        rows = Assignment.objects.filter(rater=OuterRef("pk"), **conditions).order_by().values("rater")
        return Coalesce(Subquery(rows.annotate(n=Count("id")).values("n")), Value(0))

    locked = (
        Rater.objects.select_for_update(no_key=True)
        .annotate(shown_count=count(), answered_count=count(state=Assignment.State.ANSWERED))
        .get(pk=rater.pk)
    )
    locked.study = rater.study  # read by the caller moments ago; not locked, so not worth a second read
    return locked


class _Held:
    """A locked rater's assignments: how many shown and answered, and the leases held (live ones ready to render)."""

    def __init__(self, rater: Rater, now):
        self.shown = rater.shown_count
        self.answered = rater.answered_count
        leases = Assignment.objects.filter(rater=rater, state=Assignment.State.LEASED)
        self.live, self.expired = [], []
        for assignment in leases.select_related("pair__prompt", "pair__concept").order_by("position"):
            (self.live if assignment.expires > now else self.expired).append(assignment)

    def enough(self, study: Study) -> bool:
        return len(self.live) >= min(LOOKAHEAD, study.pairs_per_rater - self.answered)

    def leases(self, study: Study, busy: bool = False) -> RaterLeases:
        return RaterLeases(
            current=self.live[0] if self.live else None,
            upcoming=self.live[1] if len(self.live) > 1 else None,
            answered=self.answered,
            quota=study.pairs_per_rater,
            busy=busy,
        )


def _claim_until(rater: Rater, study: Study, held: _Held, now) -> bool:
    """Claim pairs until the rater holds LOOKAHEAD leases (or reaches the quota); True if held back by locks."""
    schedule = kind_schedule(study, rater)
    while len(held.live) < LOOKAHEAD and held.answered + len(held.live) < study.pairs_per_rater:
        slot = held.answered + len(held.live)
        kind = schedule[slot] if slot < len(schedule) else Pair.Kind.REGULAR
        pair, busy = _claim_pair(rater, study, kind, now)
        if pair is None and kind != Pair.Kind.REGULAR:
            pair, busy = _claim_pair(rater, study, Pair.Kind.REGULAR, now)
        if pair is None:
            return busy
        held.live.append(_lease(rater, study, pair, held.shown, now))
        held.shown += 1
    return False


def kind_schedule(study: Study, rater: Rater) -> list[str]:
    """Which kind of pair each of the rater's slots gets: gold and attention pairs at random places, never first."""
    quota = study.pairs_per_rater
    gold, attention = rater_check_counts(study)
    rest = [Pair.Kind.GOLD] * gold + [Pair.Kind.ATTENTION] * attention
    rest += [Pair.Kind.REGULAR] * max(0, quota - 1 - len(rest))
    random.Random(f"{study.random_seed}:{rater.pk}").shuffle(rest)
    return [Pair.Kind.REGULAR, *rest][:quota]


def _claim_pair(rater: Rater, study: Study, kind: str, now) -> tuple[Pair | None, bool]:
    """Pick a pair the rater has not seen; returns (pair, busy) where busy means free pairs exist but are locked."""
    queue = claim_queue(rater, study, kind, now)
    if kind != Pair.Kind.REGULAR:
        return _least_loaded(list(queue[:CANDIDATES]), {}), False
    queue = queue.only("id", "ratings_count", "target_ratings", "in_overlap", "concept_id")
    locked = list(queue.select_for_update(skip_locked=True, of=("self",), no_key=True)[:CANDIDATES])
    if not locked:
        return None, queue.exists()
    # Recount in a new statement: a lease committed after this query's snapshot but before the lock is seen now.
    leases = dict(
        Assignment.objects.filter(pair__in=locked, state=Assignment.State.LEASED, expires__gt=now)
        .values_list("pair")
        .annotate(n=Count("id"))
    )
    free = [pair for pair in locked if pair.ratings_count + leases.get(pair.pk, 0) < pair.target_ratings]
    if not free:
        return None, True
    overlap = [pair for pair in free if pair.in_overlap]
    return _least_loaded(overlap or free, leases), False


def claim_queue(rater: Rater, study: Study, kind: str, now):
    """Pairs of this kind the rater has not been given, in hand-out order (regular ones only while they have room)."""
    seen = Assignment.objects.filter(rater=rater, pair=OuterRef("pk"))
    queue = Pair.objects.filter(study=study, kind=kind).filter(~Exists(seen))
    if kind != Pair.Kind.REGULAR:
        return queue.order_by("ratings_count", "token")
    # The order matches the pair_claim_queue index, so the scan stops after a few rows.
    return (
        queue.filter(ratings_count__lt=F("target_ratings"))
        .alias(leases=Coalesce(Subquery(_live_lease_count(now)), Value(0)))
        .filter(ratings_count__lt=F("target_ratings") - F("leases"))
        .order_by("-in_overlap", "ratings_count", "token")
    )


def _live_lease_count(now):
    return (
        Assignment.objects.filter(pair=OuterRef("pk"), state=Assignment.State.LEASED, expires__gt=now)
        .order_by()
        .values("pair")
        .annotate(n=Count("id"))
        .values("n")
    )


def _least_loaded(pairs: list[Pair], leases: dict[int, int]) -> Pair | None:
    if not pairs:
        return None
    load = {pair.pk: pair.ratings_count + leases.get(pair.pk, 0) for pair in pairs}
    lowest = min(load.values())
    return random.choice([pair for pair in pairs if load[pair.pk] == lowest])


def _lease(rater: Rater, study: Study, pair: Pair, shown: int, now) -> Assignment:
    left_is_a = balanced_side(rater.left_shown, shown)
    assignment = Assignment.objects.create(
        rater=rater,
        pair=pair,
        position=shown + 1,
        left_is_a=left_is_a,
        leased=now,
        expires=now + timedelta(seconds=study.lease_seconds),
    )
    if left_is_a:
        Rater.objects.filter(pk=rater.pk).update(left_shown=F("left_shown") + 1)
        rater.left_shown += 1
    return assignment


def balanced_side(left_shown: int, shown: int) -> bool:
    """Whether method A goes on the left: whichever side is behind, a coin flip when even."""
    right_shown = shown - left_shown
    if left_shown != right_shown:
        return left_shown < right_shown
    return random.random() < 0.5


def _renew_or_drop_expired(held: _Held, study: Study, now) -> None:
    """A lease that ran out comes back to its rater if the pair still has room, else it is dropped."""
    for assignment in held.expired:
        if room_for(assignment, now):
            assignment.expires = now + timedelta(seconds=study.lease_seconds)
            assignment.save(update_fields=["expires"])
            held.live.append(assignment)
        else:
            assignment.state = Assignment.State.EXPIRED
            assignment.save(update_fields=["state"])
    held.live.sort(key=lambda assignment: assignment.position)
    held.expired = []


def room_for(assignment: Assignment, now) -> bool:
    """Whether an expired lease can still become an answer; locks the pair until the transaction ends."""
    pair = Pair.objects.select_for_update(no_key=True).get(pk=assignment.pair_id)
    if pair.kind != Pair.Kind.REGULAR:
        return True
    others = (
        Assignment.objects.filter(pair=pair, state=Assignment.State.LEASED, expires__gt=now)
        .exclude(pk=assignment.pk)
        .count()
    )
    return pair.ratings_count + others < pair.target_ratings


def release_leases(rater: Rater) -> int:
    """Give back every pair the rater still holds (screened out, finished, or the study closed)."""
    return Assignment.objects.filter(rater=rater, state=Assignment.State.LEASED).update(state=Assignment.State.EXPIRED)
