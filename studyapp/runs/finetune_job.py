"""The worker-side job of a fine-tune: claim its lease, train with a heartbeat, record the result once.

`run_fine_tune` is the body of the Celery task (studyapp.tasks.fine_tune). A duplicated or redelivered
message finds the run held by a live worker, or finished, and does nothing. Checkpoints go to the run's
work folder, so a worker that takes over a lost run resumes from the newest one rather than step 0.
"""

import logging
import shutil
from datetime import timedelta

from django.conf import settings
from django.db.models import F, Q
from django.dispatch import Signal
from django.utils import timezone

from studyapp.models import FineTuneRun
from studyapp.runs.finetune import (
    class_prompt,
    finish_fine_tune,
    instance_prompt,
    output_dir,
    reference_paths,
    training_settings,
    work_dir,
)
from studyapp.runs.leases import HEARTBEAT_SECONDS, lease_seconds, max_attempts, worker_name
from studyapp.runs.worker import resolve_model

log = logging.getLogger(__name__)

Run = FineTuneRun.State

# How often the progress columns are written at most (each write also renews the lease).
PROGRESS_SECONDS = 1.0

# Sent by the training loop's progress callback at every step, after the progress is recorded, with
# `run_id`, `step` and `worker`: a place to watch training from the same process (tests/worker_hooks.py).
training_step = Signal()


def claim_fine_tune(run_id: int, worker: str, lease: float) -> bool:
    """Take the run's lease: it must be queued, or running with a heartbeat older than the lease."""
    now = timezone.now()
    stale = now - timedelta(seconds=lease)
    free = FineTuneRun.objects.filter(pk=run_id, attempts__lt=max_attempts()).filter(
        Q(state=Run.QUEUED) | Q(state=Run.RUNNING, heartbeat__lt=stale)
    )
    claimed = free.update(
        state=Run.RUNNING, worker=worker, heartbeat=now, attempts=F("attempts") + 1, error="", finished=None
    )
    if claimed:
        FineTuneRun.objects.filter(pk=run_id, started__isnull=True).update(started=now)
    return claimed == 1


class TrainingLease:
    """The fine-tune's progress callback and stop flag: it records progress, renews the lease, and says
    stop once the run is cancelled or handed to another worker."""

    def __init__(self, run_id: int, worker: str):
        self.run_id, self.worker = run_id, worker
        self.every = min(PROGRESS_SECONDS, HEARTBEAT_SECONDS, lease_seconds() / 3)
        self.last_write = None
        self.lost = False

    def held(self):
        return FineTuneRun.objects.filter(pk=self.run_id, state=Run.RUNNING, worker=self.worker)

    def on_progress(self, progress) -> None:
        now = timezone.now()
        last_step = progress.step >= progress.total
        if last_step or self.last_write is None or (now - self.last_write).total_seconds() >= self.every:
            self.last_write = now
            written = self.held().update(
                heartbeat=now,
                step=progress.step,
                total_steps=progress.total,
                loss=progress.loss,
                steps_per_second=progress.steps_per_second,
                eta_seconds=progress.eta_seconds,
            )
            self.lost = self.lost or not written
        training_step.send(sender=FineTuneRun, run_id=self.run_id, step=progress.step, worker=self.worker)

    def should_stop(self) -> bool:
        self.lost = self.lost or not self.held().exists()
        return self.lost


def run_fine_tune(run_id: int, worker: str | None = None):
    """Train one fine-tune under a lease. Returns the library's result, or None when this worker did not finish it."""
    from generation.training import FineTuneError, FineTuneStopped, fine_tune

    worker = worker or worker_name()
    run = FineTuneRun.objects.filter(pk=run_id).select_related("concept").first()
    if run is None or run.state in (Run.DONE, Run.CANCELLED, Run.FAILED):
        return None
    if not claim_fine_tune(run_id, worker, lease_seconds()):
        log.info("fine-tune %s is done, cancelled or held by another worker: skipped", run_id)
        return None
    lease = TrainingLease(run_id, worker)
    try:
        chosen = training_settings(run.method, run.hyperparameters, run.seed, run.prior_preservation)
        result = fine_tune(
            resolve_model(run.base_model),
            reference_paths(run.concept),
            instance_prompt(run.concept),
            class_prompt(run.concept),
            chosen,
            output_dir(run),
            work_dir=work_dir(run),
            device=settings.GENERATION_DEVICE,
            on_progress=lease.on_progress,
            should_stop=lease.should_stop,
        )
    except FineTuneStopped as stopped:
        log.info("fine-tune %s stopped at a checkpoint at step %s: cancelled or taken over", run_id, stopped.step)
        # A cancelled run shows the step it can resume from; one taken over belongs to its new worker.
        FineTuneRun.objects.filter(pk=run_id, worker=worker, state=Run.CANCELLED).update(step=stopped.step)
        return None
    except FineTuneError as exc:  # bad input: the library's message is what the run page shows
        fail(run, worker, str(exc))
        return None
    except Exception as exc:  # a full disk, a model that does not load, a bug: recorded on the run
        log.exception("fine-tune %s failed", run_id)
        fail(run, worker, f"{type(exc).__name__}: {exc}")
        return None
    record_result(run, worker, result)
    return result


def fail(run: FineTuneRun, worker: str, message: str) -> None:
    """Mark the run failed and leave no half-written result; its checkpoints stay for a resume."""
    if finish_fine_tune(run.pk, worker, Run.FAILED, message):
        shutil.rmtree(output_dir(run), ignore_errors=True)


def record_result(run: FineTuneRun, worker: str, result) -> None:
    relative = output_dir(run).relative_to(settings.MEDIA_ROOT).as_posix()
    recorded = finish_fine_tune(
        run.pk,
        worker,
        Run.DONE,
        output_path=relative,
        output_format=result.format,
        manifest=result.manifest,
        step=result.steps_done,
        resumed_from=result.resumed_from,
    )
    if recorded:  # the checkpoints are no longer needed once the result is in place
        shutil.rmtree(work_dir(run), ignore_errors=True)
    else:  # cancelled at the last step, or taken over: a resume, or the new worker, writes the result again
        shutil.rmtree(output_dir(run), ignore_errors=True)
