"""What staff can do to a run (cancel, resume, re-queue failed batches): one table for the run page,
the API and the admin, and one refusal for a name that is not in it."""

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from studyapp.models import GenerationBatch, GenerationRun
from studyapp.runs.launch import queue_run, send_batches
from studyapp.runs.state import refresh_run

Batch = GenerationBatch.State
Run = GenerationRun.State


@transaction.atomic
def cancel_run(run: GenerationRun) -> int:
    """Stop a run: queued batches are skipped, running ones stop at their next heartbeat. Queues nothing."""
    run.batches.filter(state__in=[Batch.QUEUED, Batch.RUNNING]).update(state=Batch.CANCELLED)
    GenerationRun.objects.filter(pk=run.pk).update(state=Run.CANCELLED, finished=timezone.now())
    return 0


@transaction.atomic
def resume_run(run: GenerationRun) -> int:
    """Queue every batch that is not done (cancelled, failed or lost); finished images are kept."""
    GenerationRun.objects.filter(pk=run.pk).update(started=None)
    return queue_run(run)


@transaction.atomic
def requeue_failed(run: GenerationRun) -> int:
    """Send the failed batches again, and only those."""
    failed = list(run.batches.filter(state=Batch.FAILED).values_list("pk", flat=True))
    if not failed:
        return 0
    GenerationBatch.objects.filter(pk__in=failed).update(state=Batch.QUEUED, attempts=0, error="", worker="")
    GenerationRun.objects.filter(pk=run.pk).update(state=Run.QUEUED, error="", finished=None)
    sent = send_batches(failed)
    refresh_run(run.pk)
    return sent


@dataclass(frozen=True)
class RunAction:
    name: str  # as it appears in URLs: /runs/<id>/<name>/, /api/runs/<id>/<name>/
    label: str  # the admin's description of the action on the selected runs
    apply: Callable[[GenerationRun], int]  # returns how many batches it queued
    done: str  # what happened; {runs} and {batches} are filled in


RUN_ACTIONS = {
    action.name: action
    for action in (
        RunAction(
            "cancel",
            "Cancel the selected runs",
            cancel_run,
            "{runs} cancelled: running batches stop after their current step.",
        ),
        RunAction(
            "resume",
            "Resume the selected runs (finished images are kept)",
            resume_run,
            "{runs} resumed: {batches} batch(es) queued; finished images are kept.",
        ),
        RunAction(
            "requeue-failed",
            "Re-queue the failed batches of the selected runs",
            requeue_failed,
            "{runs}: {batches} failed batch(es) queued again.",
        ),
    )
}


class UnknownRunAction(LookupError):
    """The action named in a request is not one of RUN_ACTIONS; the message says which ones are."""


def run_action(name: str) -> RunAction:
    if name not in RUN_ACTIONS:
        raise UnknownRunAction(f"expected one of {', '.join(RUN_ACTIONS)}, got {name!r}")
    return RUN_ACTIONS[name]


@dataclass(frozen=True)
class ActionOutcome:
    runs: int
    queued_batches: int
    message: str


def perform(action: RunAction, runs: Iterable[GenerationRun]) -> ActionOutcome:
    runs = list(runs)
    queued = sum(action.apply(run) for run in runs)
    what = str(runs[0]) if len(runs) == 1 else f"{len(runs)} runs"
    return ActionOutcome(len(runs), queued, action.done.format(runs=what, batches=queued))
