"""The assignment engine: which pair a rater sees next, the lease on it, and recording the answer.

Capacity rule: a regular pair never has more answers plus live leases than its ``target_ratings``.
Every change to that sum happens while the pair's row is locked:

1. claiming locks candidate pairs (``SELECT ... FOR UPDATE SKIP LOCKED`` on Postgres), then recounts
   their live leases in a fresh statement, so a lease committed by another rater a moment ago is seen;
2. answering a live lease turns one lease into one answer (the sum stays the same);
3. answering an expired lease adds one, so it first locks the pair and checks there is still room.

A lease that runs out simply stops counting, which only frees capacity. Gold and attention pairs have
no capacity: every rater may be shown them.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, F, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from studyapp.models import Answer, Assignment, Pair, Rater, Study

QUESTIONS = ("text", "image", "overall")
SCREEN_VALUES = ("1", "2", "0")  # image 1 (left), image 2 (right), can't decide
LOOKAHEAD = 2  # the pair on screen and the next one, whose images the page preloads
CANDIDATES = 8  # pairs locked per claim, to pick among the least rated at random
CLAIM_TRIES = 4
MAX_RESPONSE_MS = 3_600_000


class Refused(Exception):
    """An answer that cannot be stored; the message is meant for the rater."""

    def __init__(self, message: str, status: int = 409):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Progress:
    """Where a rater stands: the lease on screen, the one after it, and how far they are."""

    current: Assignment | None
    upcoming: Assignment | None
    answered: int
    quota: int
    busy: bool = False  # nothing free right now, but other raters' leases may still run out

    @property
    def finished(self) -> bool:
        return self.current is None and not self.busy


@dataclass(frozen=True)
class Submitted:
    answer: Answer
    duplicate: bool  # the same answer was already stored (double click, retry, replayed form)
    screened_out: bool
    completed: bool


# --------------------------------------------------------------------------------------------
# Next pair
# --------------------------------------------------------------------------------------------


def progress(rater: Rater, now=None) -> Progress:
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
                return held.progress(study)
            _renew_or_drop_expired(held, study, now)
            busy = _claim_until(locked, study, held, now)
        rater.left_shown = locked.left_shown
        if held.live or not busy:
            break
        time.sleep(0.005 * (attempt + 1) * random.random())
    return held.progress(study, busy=busy and not held.live)


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

    def progress(self, study: Study, busy: bool = False) -> Progress:
        return Progress(
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
    gold = round(quota * study.gold_rate)
    attention = round(quota * study.attention_rate)
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
        if _room_for(assignment, now):
            assignment.expires = now + timedelta(seconds=study.lease_seconds)
            assignment.save(update_fields=["expires"])
            held.live.append(assignment)
        else:
            assignment.state = Assignment.State.EXPIRED
            assignment.save(update_fields=["state"])
    held.live.sort(key=lambda assignment: assignment.position)
    held.expired = []


def _room_for(assignment: Assignment, now) -> bool:
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


# --------------------------------------------------------------------------------------------
# Answers
# --------------------------------------------------------------------------------------------


def to_method_space(screen: str, left_is_a: bool) -> str:
    """'1' is the left image, '2' the right one, '0' can't decide; returns 'a', 'b' or 'tie'."""
    if screen == "0":
        return Answer.Choice.TIE
    left, right = (Answer.Choice.A, Answer.Choice.B) if left_is_a else (Answer.Choice.B, Answer.Choice.A)
    return left if screen == "1" else right


def check_screen_answers(values: dict) -> dict[str, str]:
    """The three screen answers, each '1', '2' or '0'; anything else is refused."""
    checked = {}
    for question in QUESTIONS:
        value = values.get(question)
        if value not in SCREEN_VALUES:
            shown = "nothing" if value in (None, "") else repr(str(value)[:20])
            raise Refused(f"Question '{question}': expected 1, 2 or 0 (can't decide), got {shown}.", status=400)
        checked[question] = value
    return checked


def bounded_response_ms(raw, leased, now) -> int | None:
    """The page's timing, trusted only up to the time since the lease began; None if absent or absurd."""
    try:
        value = int(raw)
    except (TypeError, ValueError):
        return None
    elapsed = int((now - leased).total_seconds() * 1000)
    if value < 0 or value > MAX_RESPONSE_MS:
        return None
    return min(value, max(elapsed, 0))


def submit_answer(rater: Rater, assignment_token: str, values: dict, response_ms=None, now=None) -> Submitted:
    """Store one answer for a pair leased to this rater. Safe to repeat: a replay stores nothing new."""
    now = now or timezone.now()
    screen = check_screen_answers(values)
    try:
        return _submit(rater, assignment_token, screen, response_ms, now)
    except IntegrityError:  # the database's unique (rater, pair) caught what the lock did not
        raise Refused("You already answered this pair; the first answer is kept.", status=409) from None


def _submit(rater: Rater, assignment_token: str, screen: dict, response_ms, now) -> Submitted:
    with transaction.atomic():
        rater = locked_rater(rater)
        assignment = _own_assignment(rater, assignment_token)
        if assignment.state == Assignment.State.ANSWERED:
            return _replayed(rater, assignment, screen)
        _refuse_if_closed(rater)
        if assignment.state == Assignment.State.EXPIRED or (assignment.expires <= now and not _room_for(assignment, now)):
            raise Refused(
                "The time for this pair ran out and it went to another rater; your answer was not stored. "
                "Reload the page for your next pair.",
                status=409,
            )
        answer = _store(rater, assignment, screen, bounded_response_ms(response_ms, assignment.leased, now), now)
        screened_out = _screen_out_if_failed(rater, assignment.pair, answer, now)
        completed = not screened_out and _complete_if_done(rater, now)
    return Submitted(answer, duplicate=False, screened_out=screened_out, completed=completed)


def _own_assignment(rater: Rater, token: str) -> Assignment:
    assignment = (
        Assignment.objects.select_for_update(of=("self",))
        .select_related("pair")
        .filter(rater=rater, token=str(token or "")[:64])
        .first()
    )
    if assignment is None:
        raise Refused("This pair was not given to you, so the answer was not stored. Reload the page.", status=403)
    return assignment


def _refuse_if_closed(rater: Rater) -> None:
    if rater.study.state != Study.State.PUBLISHED:
        raise Refused("This study is closed and no longer accepts answers.", status=410)
    if rater.screened_out:
        raise Refused("Your part in this study has ended; no more answers are accepted.", status=403)
    if rater.completed:
        raise Refused("You have already finished this study; no more answers are accepted.", status=409)


def _replayed(rater: Rater, assignment: Assignment, screen: dict) -> Submitted:
    answer = Answer.objects.get(assignment=assignment)
    if answer.screen_answers != screen:
        raise Refused("You already answered this pair; the first answer is kept.", status=409)
    return Submitted(answer, duplicate=True, screened_out=bool(rater.screened_out), completed=bool(rater.completed))


def _store(rater: Rater, assignment: Assignment, screen: dict, response_ms, now) -> Answer:
    choices = {question: to_method_space(screen[question], assignment.left_is_a) for question in QUESTIONS}
    answer = Answer.objects.create(
        rater=rater,
        pair=assignment.pair,
        assignment=assignment,
        left_is_a=assignment.left_is_a,
        screen_answers=screen,
        response_ms=response_ms,
        submitted=now,
        **choices,
    )
    Assignment.objects.filter(pk=assignment.pk).update(state=Assignment.State.ANSWERED)
    Pair.objects.filter(pk=assignment.pair_id).update(ratings_count=F("ratings_count") + 1)
    return answer


def _screen_out_if_failed(rater: Rater, pair: Pair, answer: Answer, now) -> bool:
    if pair.kind != Pair.Kind.ATTENTION:
        return False
    from studyapp.setup import attention_failures_allowed, check_failed

    if not check_failed(pair, _method_answers(answer)):
        return False
    failures = sum(
        check_failed(other.pair, _method_answers(other))
        for other in Answer.objects.filter(rater=rater, pair__kind=Pair.Kind.ATTENTION).select_related("pair")
    )
    if failures <= attention_failures_allowed(rater.study):
        return False
    Rater.objects.filter(pk=rater.pk).update(screened_out=now)
    rater.screened_out = now
    release_leases(rater)
    return True


def _method_answers(answer: Answer) -> dict[str, str]:
    return {question: getattr(answer, question) for question in QUESTIONS}


def _complete_if_done(rater: Rater, now) -> bool:
    if rater.answered_count + 1 < rater.study.pairs_per_rater:  # counted before this answer
        return False
    mark_completed(rater, now)
    return True


def mark_completed(rater: Rater, now=None) -> None:
    now = now or timezone.now()
    Rater.objects.filter(pk=rater.pk, completed__isnull=True).update(completed=now)
    rater.completed = rater.completed or now
    release_leases(rater)


# --------------------------------------------------------------------------------------------
# Raters
# --------------------------------------------------------------------------------------------


def create_invites(study: Study, codes: list[str]) -> list[Rater]:
    """One invite rater per code (existing codes are kept); the link is /s/<open_link_token>/?invite=<code>."""
    raters = []
    for code in codes:
        rater, _ = Rater.objects.get_or_create(study=study, source=Rater.Source.INVITE, external_id=code)
        raters.append(rater)
    return raters
