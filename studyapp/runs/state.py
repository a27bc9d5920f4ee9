"""A run's state, derived from its batches as workers report them."""

from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from studyapp.models import GenerationBatch, GenerationRun

Batch = GenerationBatch.State
Run = GenerationRun.State


def mark_run_started(run_id: int) -> None:
    GenerationRun.objects.filter(pk=run_id, state=Run.QUEUED).update(state=Run.RUNNING)
    GenerationRun.objects.filter(pk=run_id, started__isnull=True).update(started=timezone.now())


def finish_batch(batch_id: int, worker: str, state: str, error: str = "") -> bool:
    """Record the end of a batch held by `worker`; False if the lease had moved on (cancelled, taken over)."""
    finished = GenerationBatch.objects.filter(pk=batch_id, state=Batch.RUNNING, worker=worker).update(
        state=state, error=error[:5000], finished=timezone.now()
    )
    run_id = GenerationBatch.objects.filter(pk=batch_id).values_list("run_id", flat=True).first()
    if run_id is not None:
        refresh_run(run_id)
    return bool(finished)


def _state_from(counts: dict, failed) -> tuple[str, str]:
    total = sum(counts.values())
    if failed:
        return Run.FAILED, f"{failed.concept.slug} / {failed.prompt.template!r}: {failed.error}"
    if total and counts.get(Batch.DONE, 0) == total:
        return Run.DONE, ""
    if counts.get(Batch.CANCELLED) and not counts.get(Batch.QUEUED) and not counts.get(Batch.RUNNING):
        return Run.CANCELLED, ""
    if counts.get(Batch.RUNNING) or counts.get(Batch.DONE):
        return Run.RUNNING, ""
    return Run.QUEUED, ""


@transaction.atomic
def refresh_run(run_id: int) -> str:
    """Derive the run's state from its batches: failed if any failed, done when all are done."""
    run = GenerationRun.objects.select_for_update().get(pk=run_id)
    if run.state == Run.CANCELLED:
        return run.state
    counts = dict(run.batches.values_list("state").annotate(n=Count("id")))
    failed = run.batches.filter(state=Batch.FAILED).select_related("concept", "prompt").first()
    state, error = _state_from(counts, failed)
    stopped = state in (Run.DONE, Run.FAILED, Run.CANCELLED) and not counts.get(Batch.RUNNING)
    finished = (run.finished or timezone.now()) if stopped else None
    GenerationRun.objects.filter(pk=run_id).update(state=state, error=error, finished=finished)
    if state == Run.DONE and run.state != Run.DONE and settings.SCORE_FINISHED_RUNS:
        from studyapp.tasks import score_run

        score_run.delay_on_commit(run_id)
    return state
