"""Recording a rater's answer: checked, stored in method space, exactly once; checks may screen the rater out."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from studyapp.models import QUESTIONS, Answer, Assignment, Pair, Rater, Study
from studyapp.rating.assignment import locked_rater, release_leases, room_for
from studyapp.studies.checks import attention_failures_allowed, check_failed

SCREEN_VALUES = ("1", "2", "0")  # image 1 (left), image 2 (right), can't decide
MAX_RESPONSE_MS = 3_600_000


class Refused(Exception):
    """An answer that cannot be stored; the message is meant for the rater."""

    def __init__(self, message: str, status: int = 409):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Submitted:
    answer: Answer
    duplicate: bool  # the same answer was already stored (double click, retry, replayed form)
    screened_out: bool
    completed: bool


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
        if assignment.state == Assignment.State.EXPIRED or (
            assignment.expires <= now and not room_for(assignment, now)
        ):
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
