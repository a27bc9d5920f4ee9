"""The reconciler: how a batch or a fine-tune whose worker vanished, or whose message was lost, gets done anyway.

`celery beat` runs it every GENERATION_RECONCILE_SECONDS (studyapp.tasks.reconcile_runs); the
`reconcile_runs` command runs it once.
"""

import logging
from dataclasses import asdict, dataclass, field
from datetime import timedelta

from django.utils import timezone

from studyapp.models import FineTuneRun, GenerationBatch
from studyapp.runs.finetune import finish_fine_tune
from studyapp.runs.finetune_launch import send_fine_tunes
from studyapp.runs.launch import send_batches
from studyapp.runs.leases import lease_seconds, max_attempts, visibility_timeout
from studyapp.runs.state import finish_batch, refresh_run

log = logging.getLogger(__name__)

Batch = GenerationBatch.State


@dataclass
class ReconcileReport:
    requeued: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    resent: list[int] = field(default_factory=list)
    fine_tunes_requeued: list[int] = field(default_factory=list)
    fine_tunes_failed: list[int] = field(default_factory=list)
    fine_tunes_resent: list[int] = field(default_factory=list)


def reconcile(lease: float | None = None, resend_after: float | None = None) -> ReconcileReport:
    """Re-queue batches whose worker vanished (heartbeat older than the lease) and resend lost messages.

    A batch that lost its worker `GENERATION_MAX_ATTEMPTS` times is marked failed instead, so a batch
    that kills its worker is not redelivered forever. Duplicates this may cause are skipped by the tasks.
    """
    now = timezone.now()
    stale = now - timedelta(seconds=lease_seconds() if lease is None else lease)
    report = ReconcileReport()
    for batch in GenerationBatch.objects.filter(state=Batch.RUNNING, heartbeat__lt=stale):
        if batch.attempts >= max_attempts():
            message = f"gave up after {batch.attempts} attempts: the worker was lost each time (last: {batch.worker})"
            if finish_batch(batch.pk, batch.worker, Batch.FAILED, message):
                report.failed.append(batch.pk)
        elif _requeue_if_still_stale(batch.pk, stale):
            report.requeued.append(batch.pk)
    # A queued batch older than the visibility timeout has lost its message (say, Redis restarted without it).
    lost = now - timedelta(seconds=visibility_timeout() if resend_after is None else resend_after)
    queued = GenerationBatch.objects.filter(state=Batch.QUEUED, queued__lt=lost)
    report.resent = list(queued.values_list("pk", flat=True))
    send_batches(report.requeued + report.resent)
    touched = GenerationBatch.objects.filter(pk__in=report.requeued + report.failed)
    for run_id in set(touched.values_list("run_id", flat=True)):
        refresh_run(run_id)
    _reconcile_fine_tunes(report, stale, lost)
    if any(asdict(report).values()):
        log.warning("reconciled runs: %s", asdict(report))
    return report


def _reconcile_fine_tunes(report: ReconcileReport, stale, lost) -> None:
    """The same rules for fine-tunes: a silent one is re-queued (it resumes from its last checkpoint)."""
    for run in FineTuneRun.objects.filter(state=FineTuneRun.State.RUNNING, heartbeat__lt=stale):
        if run.attempts >= max_attempts():
            message = f"gave up after {run.attempts} attempts: the worker was lost each time (last: {run.worker})"
            if finish_fine_tune(run.pk, run.worker, FineTuneRun.State.FAILED, message):
                report.fine_tunes_failed.append(run.pk)
            continue
        silent = FineTuneRun.objects.filter(pk=run.pk, state=FineTuneRun.State.RUNNING, heartbeat__lt=stale)
        if silent.update(state=FineTuneRun.State.QUEUED):
            report.fine_tunes_requeued.append(run.pk)
    queued = FineTuneRun.objects.filter(state=FineTuneRun.State.QUEUED, queued__lt=lost)
    report.fine_tunes_resent = list(queued.values_list("pk", flat=True))
    send_fine_tunes(report.fine_tunes_requeued + report.fine_tunes_resent)


def _requeue_if_still_stale(batch_id: int, stale) -> bool:
    """Hand the batch back to the queue unless its worker renewed the lease a moment ago."""
    still_stale = GenerationBatch.objects.filter(pk=batch_id, state=Batch.RUNNING, heartbeat__lt=stale)
    return bool(still_stale.update(state=Batch.QUEUED))
