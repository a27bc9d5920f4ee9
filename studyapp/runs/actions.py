"""What staff can do to a run (cancel, resume, re-queue failed batches): one table for the run page,
the API and the admin, one refusal for a name that is not in it, and one for a run in a state the
action does not apply to (cancelling a finished run would otherwise mark it cancelled)."""

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
    apply: Callable[[GenerationRun], int]  # returns how many batches (or fine-tunes) it queued
    done: str  # what happened; {runs} and {batches} are filled in
    applies_to: tuple[str, ...]  # the run states it may start from


RUN_ACTIONS = {
    action.name: action
    for action in (
        RunAction(
            "cancel",
            "Cancel the selected runs",
            cancel_run,
            "{runs} cancelled: running batches stop after their current step.",
            (Run.QUEUED, Run.RUNNING, Run.FAILED),
        ),
        RunAction(
            "resume",
            "Resume the selected runs (finished images are kept)",
            resume_run,
            "{runs} resumed: {batches} batch(es) queued; finished images are kept.",
            (Run.CANCELLED, Run.FAILED),
        ),
        RunAction(
            "requeue-failed",
            "Re-queue the failed batches of the selected runs",
            requeue_failed,
            "{runs}: {batches} failed batch(es) queued again.",
            (Run.FAILED, Run.CANCELLED),
        ),
    )
}


class UnknownRunAction(LookupError):
    """The action named in a request is not one of RUN_ACTIONS; the message says which ones are."""


def run_action(name: str, actions: dict[str, RunAction] = RUN_ACTIONS) -> RunAction:
    """The action called `name` in `actions` (a generation run's by default, or a fine-tune's)."""
    if name not in actions:
        raise UnknownRunAction(f"expected one of {', '.join(actions)}, got {name!r}")
    return actions[name]


class RunActionRefused(Exception):
    """The run is in a state the action does not apply to; the message says which states it does."""


@dataclass(frozen=True)
class ActionOutcome:
    runs: int
    queued_batches: int
    message: str
    refused: tuple[str, ...] = ()


def perform(action: RunAction, runs: Iterable) -> ActionOutcome:
    """Apply the action to each run it applies to; the others are left as they are and listed as refused."""
    applied, queued, refused = [], 0, []
    for run in runs:
        try:
            queued += _apply_checked(action, run)
            applied.append(run)
        except RunActionRefused as refusal:
            refused.append(str(refusal))
    what = str(applied[0]) if len(applied) == 1 else f"{len(applied)} runs"
    message = action.done.format(runs=what, batches=queued) if applied else ""
    if refused:
        message = " ".join(part for part in (message, "Refused: " + "; ".join(refused) + ".") if part)
    return ActionOutcome(len(applied), queued, message, tuple(refused))


@transaction.atomic
def _apply_checked(action: RunAction, run: GenerationRun) -> int:
    # The row lock keeps a worker from finishing the run between the check and the action.
    locked = type(run).objects.select_for_update().get(pk=run.pk)
    if locked.state not in action.applies_to:
        allowed = ", ".join(action.applies_to)
        raise RunActionRefused(f"{locked} is {locked.state}; {action.name} applies only to {allowed} runs")
    return action.apply(locked)
