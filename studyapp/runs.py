"""Generation runs: validate, queue, follow, cancel, resume and reconcile.

The database is the source of truth: a run is split into batches (one task each: the seeds of one
concept and prompt), each batch row holds its state and its worker's lease. The broker only carries
batch ids, so a lost or duplicated message costs time, never an image.
"""

import logging
from dataclasses import asdict, dataclass, field
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Max
from django.utils import timezone

from studyapp.generation_jobs import lease_seconds, max_attempts
from studyapp.models import Concept, GenerationBatch, GenerationRun, Method, PromptSet

log = logging.getLogger(__name__)

Batch = GenerationBatch.State
Run = GenerationRun.State
MAX_STEPS = 1000


# ---------------------------------------------------------------- validation


def check_seed_indices(value) -> list[int]:
    if not isinstance(value, list) or not value:
        raise ValidationError({"seed_indices": f"expected a non-empty list of seed indices, e.g. [0, 1, 2], got {value!r}"})
    bad = [item for item in value if isinstance(item, bool) or not isinstance(item, int) or item < 0]
    if bad:
        raise ValidationError({"seed_indices": f"expected integers >= 0, got {bad[0]!r}"})
    if len(set(value)) != len(value):
        raise ValidationError({"seed_indices": f"expected each seed index once, got {value!r}"})
    return list(value)


def check_steps(steps) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
        raise ValidationError({"steps": f"expected an integer in [1, {MAX_STEPS}], got {steps!r}"})
    return steps


def check_concepts(prompt_set: PromptSet | None, concepts: list[Concept]) -> None:
    if prompt_set is None:
        raise ValidationError({"prompt_set": "expected a prompt set, got none"})
    if not prompt_set.prompts.exists():
        raise ValidationError({"prompt_set": f"prompt set {prompt_set.slug!r} has no prompts"})
    if not concepts:
        raise ValidationError({"concepts": "expected at least one concept, got none"})
    if prompt_set.concept_kind:
        wrong = [c.slug for c in concepts if c.kind != prompt_set.concept_kind]
        if wrong:
            raise ValidationError(
                {"concepts": f"prompt set {prompt_set.slug!r} is for {prompt_set.concept_kind} subjects, got {', '.join(wrong)}"}
            )


def check_params(sampler: str, params) -> dict:
    from generation.errors import ParameterError
    from generation.samplers import validate_params

    try:
        return validate_params(sampler, params)
    except ParameterError as exc:
        raise ValidationError({"params": str(exc)}) from None


def validate_run(method: Method, prompt_set: PromptSet | None, concepts: list[Concept], seed_indices, steps, params=None) -> dict:
    """Check everything a run needs before anything is queued; return the full sampler parameters."""
    if method.kind != Method.Kind.SAMPLER:
        raise ValidationError({"method": f"method {method.name!r} is external: its images are imported, not generated"})
    check_concepts(prompt_set, concepts)
    check_seed_indices(seed_indices)
    check_steps(steps)
    return check_params(method.sampler, method.params if params is None else params)


# ---------------------------------------------------------------- queueing


@transaction.atomic
def create_run(*, method, prompt_set, concepts, seed_indices, steps=None, label="", sweep=None) -> GenerationRun:
    """Validate, save and queue a run; its tasks are sent when the transaction commits."""
    concepts = list(concepts)
    steps = method.steps if steps is None else steps
    params = validate_run(method, prompt_set, concepts, seed_indices, steps)
    run = GenerationRun.objects.create(
        method=method, prompt_set=prompt_set, seed_indices=seed_indices, params=params, steps=steps, label=label, sweep=sweep
    )
    run.concepts.set(concepts)
    queue_run(run)
    run.refresh_from_db()
    return run


@transaction.atomic
def queue_run(run: GenerationRun) -> int:
    """Create the run's batches (one per concept and prompt) and send the ones not done; returns how many."""
    prompts = list(run.prompt_set.prompts.all())
    concepts = list(run.concepts.all())
    for concept in concepts:
        for prompt in prompts:
            GenerationBatch.objects.get_or_create(
                run=run, concept=concept, prompt=prompt, defaults={"seed_indices": run.seed_indices}
            )
    GenerationRun.objects.filter(pk=run.pk).update(
        images_total=len(concepts) * len(prompts) * len(run.seed_indices), state=Run.QUEUED, error="", finished=None
    )
    pending = run.batches.exclude(state__in=[Batch.DONE, Batch.RUNNING])
    pending.update(state=Batch.QUEUED, attempts=0, error="", worker="")
    return send_batches(list(pending.values_list("pk", flat=True)))


def send_batches(batch_ids: list[int]) -> int:
    """Send one task per batch once the surrounding transaction commits (at once outside one)."""
    from studyapp.tasks import generate_batch

    GenerationBatch.objects.filter(pk__in=batch_ids).update(queued=timezone.now())
    for batch_id in batch_ids:
        generate_batch.delay_on_commit(batch_id)
    return len(batch_ids)


@transaction.atomic
def cancel_run(run: GenerationRun) -> None:
    """Stop a run: queued batches are skipped, running ones stop at their next heartbeat."""
    run.batches.filter(state__in=[Batch.QUEUED, Batch.RUNNING]).update(state=Batch.CANCELLED)
    GenerationRun.objects.filter(pk=run.pk).update(state=Run.CANCELLED, finished=timezone.now())


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


# ---------------------------------------------------------------- state from the workers


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


@transaction.atomic
def refresh_run(run_id: int) -> str:
    """Derive the run's state from its batches: failed if any failed, done when all are done."""
    run = GenerationRun.objects.select_for_update().get(pk=run_id)
    if run.state == Run.CANCELLED:
        return run.state
    counts = dict(run.batches.values_list("state").annotate(n=Count("id")))
    total = sum(counts.values())
    failed = run.batches.filter(state=Batch.FAILED).select_related("concept", "prompt").first()
    if failed:
        state, error = Run.FAILED, f"{failed.concept.slug} / {failed.prompt.template!r}: {failed.error}"
    elif total and counts.get(Batch.DONE, 0) == total:
        state, error = Run.DONE, ""
    elif counts.get(Batch.CANCELLED) and not counts.get(Batch.QUEUED) and not counts.get(Batch.RUNNING):
        state, error = Run.CANCELLED, ""
    elif counts.get(Batch.RUNNING) or counts.get(Batch.DONE):
        state, error = Run.RUNNING, ""
    else:
        state, error = Run.QUEUED, ""
    stopped = state in (Run.DONE, Run.FAILED, Run.CANCELLED) and not counts.get(Batch.RUNNING)
    finished = (run.finished or timezone.now()) if stopped else None
    GenerationRun.objects.filter(pk=run_id).update(state=state, error=error, finished=finished)
    if state == Run.DONE and run.state != Run.DONE and getattr(settings, "SCORE_FINISHED_RUNS", True):
        from studyapp.tasks import score_run

        score_run.delay_on_commit(run_id)
    return state


# ---------------------------------------------------------------- reconciling


@dataclass
class ReconcileReport:
    requeued: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    resent: list[int] = field(default_factory=list)


def visibility_timeout() -> int:
    return int(getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}).get("visibility_timeout", 3600))


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
        elif GenerationBatch.objects.filter(pk=batch.pk, state=Batch.RUNNING, heartbeat__lt=stale).update(state=Batch.QUEUED):
            report.requeued.append(batch.pk)
    # A queued batch older than the visibility timeout has lost its message (say, Redis restarted without it).
    lost = now - timedelta(seconds=visibility_timeout() if resend_after is None else resend_after)
    report.resent = list(GenerationBatch.objects.filter(state=Batch.QUEUED, queued__lt=lost).values_list("pk", flat=True))
    send_batches(report.requeued + report.resent)
    for run_id in set(GenerationBatch.objects.filter(pk__in=report.requeued + report.failed).values_list("run_id", flat=True)):
        refresh_run(run_id)
    if report.requeued or report.failed or report.resent:
        log.warning("reconciled runs: %s", asdict(report))
    return report


# ---------------------------------------------------------------- progress


@dataclass(frozen=True)
class RunProgress:
    run_id: int
    state: str
    error: str
    done: int
    total: int
    images_per_second: float | None
    eta_seconds: float | None
    batches: dict

    @property
    def percent(self) -> float:
        return 100.0 * self.done / self.total if self.total else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "percent": round(self.percent, 1)}


def progress(run: GenerationRun) -> RunProgress:
    """Images done / total, throughput since the run (re)started, and the time left, from the database."""
    run.refresh_from_db(fields=["state", "error", "images_total", "started", "finished"])
    done = run.images.count()
    rate = eta = None
    if run.started:
        recent = run.images.filter(created__gte=run.started).aggregate(n=Count("id"), last=Max("created"))
        end = run.finished or (timezone.now() if run.state == Run.RUNNING else recent["last"])
        elapsed = (end - run.started).total_seconds() if end else 0
        if recent["n"] and elapsed > 0:
            rate = recent["n"] / elapsed
    if rate and run.state in (Run.RUNNING, Run.QUEUED):
        eta = max(run.images_total - done, 0) / rate
    batches = dict(run.batches.values_list("state").annotate(n=Count("id")))
    return RunProgress(run.pk, run.state, run.error, done, run.images_total, rate, eta, batches)
