"""The assignment engine: which pair a rater sees next, and the lease that holds it for them.

Capacity rule: a regular pair never has more answers plus live leases than its ``target_ratings``.
Every change to that sum happens while the pair's row is locked:

1. claiming locks candidate pairs (``SELECT ... FOR UPDATE SKIP LOCKED`` on Postgres), then recounts
   their live leases in a fresh statement, so a lease committed by another rater a moment ago is seen;
2. answering a live lease turns one lease into one answer (the sum stays the same; rating/answers.py);
3. answering an expired lease adds one, so it first locks the pair and checks there is still room.

A lease that runs out simply stops counting, which only frees capacity. Gold and attention pairs have
no capacity: every rater may be shown them.

A lease is held for the shorter of the study's lease time and the idle time (RATER_IDLE_SECONDS)
and is extended while its rater keeps loading pages, so a rater who walks away frees their pairs
early. A rater who finds every remaining slot leased by others is told to wait ("busy"), never that
the study is full: only pairs without room left, ignoring leases, make a rater finished early.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, F, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from studyapp.models import Assignment, Pair, Rater, Study
from studyapp.studies.checks import rater_check_counts

LOOKAHEAD = 2  # the pair on screen and the next one, whose images the page preloads
CANDIDATES = 8  # pairs locked per claim, to pick among the least rated at random
CLAIM_TRIES = 4
CHECK_PAIRS_CACHE_SECONDS = 60
CHECK_SEARCH_STEPS = 2000  # bounds the search for image-disjoint check pairs
# A lease this close to running out is not extended: another rater whose clock is a little ahead may
# already count it as gone. It runs out and comes back through the locked renewal instead.
EXTEND_MARGIN = timedelta(seconds=5)


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
            _extend_live(held, study, now)
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
    """Claim pairs until the rater holds LOOKAHEAD leases (or reaches the quota); True if held back by others."""
    schedule = kind_schedule(study, rater)
    shown = ShownBefore.of(rater)
    checks = [row for row in reserved_checks(rater, study) if row[0] not in shown.pairs]
    blocked = shown.images | {image for row in checks for image in row[2:]}
    while len(held.live) < LOOKAHEAD and held.answered + len(held.live) < study.pairs_per_rater:
        slot = held.answered + len(held.live)
        kind = schedule[slot] if slot < len(schedule) else Pair.Kind.REGULAR
        pair = _take_check(checks, kind, shown) if kind != Pair.Kind.REGULAR else None
        if pair is None:
            pair, busy = _claim_pair(rater, study, now, blocked)
        if pair is None:
            return busy
        held.live.append(_lease(rater, study, pair, held.shown, shown, now))
        blocked |= {pair.image_a_id, pair.image_b_id}
        held.shown += 1
    return False


class ShownBefore:
    """Every pair and image a rater has been shown, and per comparison how often method A was on the left."""

    def __init__(self, rows):
        self.pairs: set[int] = set()
        self.images: set[int] = set()
        self.sides: dict[int | None, list[int]] = {}  # comparison -> [A on the left, shown]
        for pair, image_a, image_b, comparison, left_is_a in rows:
            self.add(pair, image_a, image_b, comparison, left_is_a)

    @classmethod
    def of(cls, rater: Rater) -> ShownBefore:
        rows = Assignment.objects.filter(rater=rater).values_list(
            "pair_id", "pair__image_a_id", "pair__image_b_id", "pair__comparison_id", "left_is_a"
        )
        return cls(rows)

    def add(self, pair: int, image_a: int, image_b: int, comparison: int | None, left_is_a: bool) -> None:
        self.pairs.add(pair)
        self.images.update((image_a, image_b))
        counts = self.sides.setdefault(comparison, [0, 0])
        counts[0] += left_is_a
        counts[1] += 1


def reserved_checks(rater: Rater, study: Study) -> list[tuple[int, str, int, int]]:
    """The check pairs (id, kind, image a, image b) this rater is to get, chosen before any regular pair.

    Check pairs reuse study images, so they are picked up front (in an order keyed per rater, sharing
    no image with each other) and regular pairs showing their images are skipped; otherwise a rater's
    regular pairs would use up every check pair's images and the checks would never come.
    """
    gold, attention = rater_check_counts(study)
    if not gold and not attention:
        return []
    rows = sorted(_check_pairs(study), key=lambda row: _keyed(f"checks:{rater.pk}:{row[0]}"))
    by_kind = {kind: [row for row in rows if row[1] == kind] for kind in (Pair.Kind.GOLD, Pair.Kind.ATTENTION)}
    wanted = {Pair.Kind.GOLD: gold, Pair.Kind.ATTENTION: attention}
    # The scarcest kind first: it has the fewest ways to fit beside the others.
    kinds = sorted((kind for kind in wanted if wanted[kind]), key=lambda kind: len(by_kind[kind]) / wanted[kind])
    return _disjoint_choice([kind for kind in kinds for _ in range(wanted[kind])], by_kind)


def _disjoint_choice(slots: list[str], by_kind: dict[str, list[tuple]]) -> list[tuple]:
    """One check pair per slot, no image twice (a small depth-first search); the longest partial choice if none."""
    best: list[tuple] = []
    steps = 0

    def visit(slot: int, chosen: list[tuple], images: set[int], after: dict[str, int]) -> bool:
        nonlocal best, steps
        if len(chosen) > len(best):
            best = list(chosen)
        if slot == len(slots):
            return True
        kind = slots[slot]
        for index in range(after.get(kind, 0), len(by_kind[kind])):
            steps += 1
            row = by_kind[kind][index]
            if steps > CHECK_SEARCH_STEPS or images & {row[2], row[3]}:
                continue
            chosen.append(row)
            if visit(slot + 1, chosen, images | {row[2], row[3]}, {**after, kind: index + 1}):
                return True
            chosen.pop()
        return False

    visit(0, [], set(), {})
    return best


def _check_pairs(study: Study) -> list[tuple[int, str, int, int]]:
    # Read on every claim and fixed once the study is published: a minute of caching is safe.
    key = f"rater-check-pairs:{study.pk}"
    rows = cache.get(key)
    if rows is None:
        checks = Pair.objects.filter(study=study).exclude(kind=Pair.Kind.REGULAR).order_by("pk")
        rows = list(checks.values_list("pk", "kind", "image_a_id", "image_b_id"))
        cache.set(key, rows, CHECK_PAIRS_CACHE_SECONDS)
    return rows


def _take_check(checks: list[tuple[int, str, int, int]], kind: str, shown: ShownBefore) -> Pair | None:
    """The next reserved check pair of this kind whose images the rater has not been shown."""
    for row in checks:
        if row[1] == kind and not shown.images & {row[2], row[3]}:
            checks.remove(row)
            return Pair.objects.get(pk=row[0])
    return None


def kind_schedule(study: Study, rater: Rater) -> list[str]:
    """Which kind of pair each of the rater's slots gets: gold and attention pairs at random places, never first."""
    quota = study.pairs_per_rater
    gold, attention = rater_check_counts(study)
    rest = [Pair.Kind.GOLD] * gold + [Pair.Kind.ATTENTION] * attention
    rest += [Pair.Kind.REGULAR] * max(0, quota - 1 - len(rest))
    random.Random(f"{study.random_seed}:{rater.pk}").shuffle(rest)
    return [Pair.Kind.REGULAR, *rest][:quota]


def _claim_pair(rater: Rater, study: Study, now, blocked_images: set[int]) -> tuple[Pair | None, bool]:
    """Pick a regular pair without a blocked image; (pair, busy), where busy means room may still free up.

    Room frees up when another rater's row lock or lease goes away; only pairs that are full with
    answers are gone for good.
    """
    kind = Pair.Kind.REGULAR
    queue = claim_queue(rater, study, kind, now, blocked_images)
    queue = queue.only(
        "id", "ratings_count", "target_ratings", "in_overlap", "concept_id", "comparison", "image_a", "image_b"
    )
    locked = list(queue.select_for_update(skip_locked=True, of=("self",), no_key=True)[:CANDIDATES])
    if not locked:
        return None, _with_room(unseen_pairs(study, kind, blocked_images)).exists()
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


def unseen_pairs(study: Study, kind: str, shown_images: set[int]):
    """Pairs of this kind with neither image among those the rater was shown (so no pair twice either).

    A repeated image would unblind: two comparisons against one baseline share the baseline's images,
    and seeing one again marks which side it is on.
    """
    pairs = Pair.objects.filter(study=study, kind=kind)
    if shown_images:
        pairs = pairs.exclude(image_a__in=shown_images).exclude(image_b__in=shown_images)
    return pairs


def _with_room(pairs):
    return pairs.filter(ratings_count__lt=F("target_ratings"))


def claim_queue(rater: Rater, study: Study, kind: str, now, shown_images: set[int] | None = None):
    """Pairs of this kind showing the rater no image again, in hand-out order (regular ones while they have room)."""
    queue = unseen_pairs(study, kind, ShownBefore.of(rater).images if shown_images is None else shown_images)
    if kind != Pair.Kind.REGULAR:
        return queue.order_by("ratings_count", "token")
    # The order matches the pair_claim_queue index, so the scan stops after a few rows.
    return (
        _with_room(queue)
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


def _lease(rater: Rater, study: Study, pair: Pair, position: int, shown: ShownBefore, now) -> Assignment:
    left, count = shown.sides.get(pair.comparison_id, (0, 0))
    left_is_a = balanced_side(left, count, coin=side_coin(rater, pair.comparison_id, count))
    assignment = Assignment.objects.create(
        rater=rater,
        pair=pair,
        position=position + 1,
        left_is_a=left_is_a,
        leased=now,
        expires=now + lease_hold(study),
    )
    shown.add(pair.pk, pair.image_a_id, pair.image_b_id, pair.comparison_id, left_is_a)
    if left_is_a:
        Rater.objects.filter(pk=rater.pk).update(left_shown=F("left_shown") + 1)
        rater.left_shown += 1
    return assignment


def balanced_side(left_shown: int, shown: int, coin: bool | None = None) -> bool:
    """Whether method A goes on the left: whichever side is behind, else the coin (a fresh random one if None)."""
    right_shown = shown - left_shown
    if left_shown != right_shown:
        return left_shown < right_shown
    return random.random() < 0.5 if coin is None else coin


def side_coin(rater: Rater, comparison_id: int | None, shown: int) -> bool:
    """A coin nobody outside the server can call: keyed by SECRET_KEY, per rater, comparison and count.

    Within a rater and comparison, sides go in pairs (one left, one right) whose order is this coin,
    so counts stay within one and earlier pairs do not tell the order of the next.
    """
    return _keyed(f"sides:{rater.pk}:{comparison_id}:{shown}")[0] & 1 == 1


def _keyed(message: str) -> bytes:
    return hmac.new(settings.SECRET_KEY.encode(), message.encode(), hashlib.sha256).digest()


def lease_hold(study: Study) -> timedelta:
    """How long a lease lasts from the rater's last page: the study's lease time, cut short by the idle time."""
    return timedelta(seconds=min(study.lease_seconds, settings.RATER_IDLE_SECONDS))


def _extend_live(held: _Held, study: Study, now) -> None:
    """The rater is here: their live leases last another full hold (written only once a quarter of it is used)."""
    hold = lease_hold(study)
    stale = [lease for lease in held.live if now + EXTEND_MARGIN < lease.expires < now + hold * 0.75]
    if stale:
        Assignment.objects.filter(pk__in=[lease.pk for lease in stale]).update(expires=now + hold)
        for lease in stale:
            lease.expires = now + hold


def _renew_or_drop_expired(held: _Held, study: Study, now) -> None:
    """A lease that ran out comes back to its rater if the pair still has room (up to LOOKAHEAD), else it is dropped."""
    for assignment in held.expired:
        if len(held.live) < LOOKAHEAD and room_for(assignment, now):
            assignment.expires = now + lease_hold(study)
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
