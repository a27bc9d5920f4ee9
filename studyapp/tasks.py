"""Celery tasks: thin wrappers that take ids; the work and its tests live in studyapp.runs.

`generate_batch` and `fine_tune` go to the `gpu` queue (CELERY_TASK_ROUTES), everything else to `cpu`.
Both are acknowledged late and re-queued when their worker dies; they are safe to run twice because
each batch and each fine-tune holds a lease in the database, and each image slot is unique.
"""

from dataclasses import asdict

from celery import shared_task
from django.conf import settings

from studyapp.celery import app
from studyapp.runs.finetune_job import run_fine_tune
from studyapp.runs.reconciler import reconcile
from studyapp.runs.scoring import score_run as score
from studyapp.runs.worker import run_batch


@shared_task(name="studyapp.tasks.generate_batch", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def generate_batch(batch_id: int) -> int:
    """Generate the missing images of one batch; returns how many were created."""
    result = run_batch(batch_id)
    return result.created if result else 0


@shared_task(name="studyapp.tasks.fine_tune", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def fine_tune(run_id: int) -> int:
    """Train one fine-tune (resuming from its last checkpoint); returns the steps it ended at, 0 if skipped."""
    result = run_fine_tune(run_id)
    return result.steps_done if result else 0


@shared_task(name="studyapp.tasks.reconcile_runs", ignore_result=True)
def reconcile_runs() -> dict:
    """Re-queue batches whose worker vanished; see studyapp.runs.reconciler."""
    return asdict(reconcile())


@shared_task(name="studyapp.tasks.score_run", acks_late=True, ignore_result=True)
def score_run(run_id: int) -> int:
    """Compute CLIP-IS, CLIP-TS and DINO-IS of a run's images (cpu queue); returns how many were scored."""
    return score(run_id).scored


# `celery beat` imports this module before it reads the schedule; CELERY_BEAT_SCHEDULE can override it.
app.add_periodic_task(
    float(settings.GENERATION_RECONCILE_SECONDS), reconcile_runs.s(), name="reconcile generation runs"
)
