"""Queueing a fine-tune: validate and save it, send its task, and the staff actions (cancel, resume)."""

from django.db import transaction
from django.utils import timezone

from studyapp.models import FineTuneRun
from studyapp.runs.actions import RunAction
from studyapp.runs.finetune import validate_fine_tune
from studyapp.runs.workers import fine_tune_after_commit, wants_background

Run = FineTuneRun.State


@transaction.atomic
def create_fine_tune(**fields) -> FineTuneRun:
    """Validate, save and queue a fine-tune; its task is sent when the transaction commits."""
    run = FineTuneRun(**fields)
    run.hyperparameters = validate_fine_tune(run)
    run.total_steps = run.hyperparameters.get("steps", 0)
    run.save()
    queue_fine_tune(run)
    run.refresh_from_db()
    return run


def queue_fine_tune(run: FineTuneRun) -> None:
    """Mark the run queued (its checkpoints kept) and send its task once the transaction commits."""
    FineTuneRun.objects.filter(pk=run.pk).update(
        state=Run.QUEUED, error="", finished=None, attempts=0, worker="", queued=timezone.now()
    )
    send_fine_tunes([run.pk])


def send_fine_tunes(run_ids: list[int]) -> int:
    """One task per fine-tune once the transaction commits; without a broker inside ``workers.in_background()``
    (a page saving one), this process's generation thread trains it instead."""
    from studyapp.tasks import fine_tune

    FineTuneRun.objects.filter(pk__in=run_ids).update(queued=timezone.now())
    for run_id in run_ids:
        if wants_background():
            fine_tune_after_commit(run_id)
        else:
            fine_tune.delay_on_commit(run_id)
    return len(run_ids)


@transaction.atomic
def cancel_fine_tune(run: FineTuneRun) -> int:
    """Stop a fine-tune: a queued one is skipped, a running one writes a checkpoint at its next step and stops."""
    FineTuneRun.objects.filter(pk=run.pk).update(state=Run.CANCELLED, finished=timezone.now(), eta_seconds=None)
    return 0


@transaction.atomic
def resume_fine_tune(run: FineTuneRun) -> int:
    """Queue a cancelled or failed fine-tune again; training goes on from its last checkpoint."""
    queue_fine_tune(run)
    return 1


FINE_TUNE_ACTIONS = {
    action.name: action
    for action in (
        RunAction(
            "cancel",
            "Cancel the selected fine-tunes",
            cancel_fine_tune,
            "{runs} cancelled: training stops after its current step, with a checkpoint.",
            (Run.QUEUED, Run.RUNNING),
        ),
        RunAction(
            "resume",
            "Resume the selected fine-tunes (from their last checkpoint)",
            resume_fine_tune,
            "{runs} queued again: training goes on from the last checkpoint.",
            (Run.CANCELLED, Run.FAILED),
        ),
    )
}
