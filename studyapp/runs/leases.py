"""A worker's lease on a batch: taking it, renewing it with a heartbeat, and how long it lasts.

The durations come from settings (GENERATION_LEASE_SECONDS, GENERATION_MAX_ATTEMPTS and the broker's
visibility timeout); both the worker-side job and the reconciler read them here.
"""

import os
import socket
from collections.abc import Sequence
from datetime import timedelta

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from studyapp.models import GenerationBatch

# How often a running batch tells the database it is alive (and checks it was not cancelled).
HEARTBEAT_SECONDS = 5.0


def lease_seconds() -> float:
    """How long a heartbeat may be silent before the batch counts as abandoned."""
    return float(settings.GENERATION_LEASE_SECONDS)


def max_attempts() -> int:
    """How many workers a batch may lose before it is marked failed."""
    return settings.GENERATION_MAX_ATTEMPTS


def visibility_timeout() -> int:
    """How long the broker holds an unacknowledged task before it delivers it again."""
    return int(settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"])


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class LeaseLost(Exception):
    """The batch was cancelled, or handed to another worker, while this one was generating it."""


def claim_batch(batch_id: int, worker: str, lease_seconds: float) -> bool:
    """Take the batch's lease: it must be queued, or running with a heartbeat older than the lease.

    A batch that has used up its attempts is left for the reconciler to mark failed, which stops a
    batch that kills its worker (out of memory, say) from being redelivered forever.
    """
    now = timezone.now()
    stale = now - timedelta(seconds=lease_seconds)
    free = GenerationBatch.objects.filter(pk=batch_id, attempts__lt=max_attempts()).filter(
        Q(state=GenerationBatch.State.QUEUED) | Q(state=GenerationBatch.State.RUNNING, heartbeat__lt=stale)
    )
    claimed = free.update(
        state=GenerationBatch.State.RUNNING,
        worker=worker,
        heartbeat=now,
        started=now,
        attempts=F("attempts") + 1,
        error="",
    )
    return claimed == 1


class Heartbeat:
    """A step callback that renews the leases every few seconds and stops the batches when one is lost."""

    def __init__(self, batch_ids: int | Sequence[int], worker: str, every: float | None = None):
        self.batch_ids = [batch_ids] if isinstance(batch_ids, int) else list(batch_ids)
        self.worker = worker
        # Renew well inside the lease, whatever the lease is set to.
        self.every = min(HEARTBEAT_SECONDS, lease_seconds() / 3) if every is None else every
        self.last = timezone.now()

    def __call__(self, *step) -> None:
        now = timezone.now()
        if (now - self.last).total_seconds() < self.every:
            return
        self.last = now
        held = GenerationBatch.objects.filter(
            pk__in=self.batch_ids, state=GenerationBatch.State.RUNNING, worker=self.worker
        )
        if held.update(heartbeat=now) < len(self.batch_ids):
            lost = sorted(set(self.batch_ids) - set(held.values_list("pk", flat=True)))
            raise LeaseLost(f"batch {', '.join(map(str, lost))}: cancelled or taken over by another worker")


def claim_companions(batch: GenerationBatch, worker: str, images: int) -> list[GenerationBatch]:
    """Claim queued batches of the same run and concept (its other prompts) while the group's seeds fit in
    ``images``: a packing worker generates them together, one denoiser call per step for all."""
    held = len(batch.seed_indices)
    companions = []
    candidates = (
        GenerationBatch.objects.filter(
            run_id=batch.run_id, concept_id=batch.concept_id, state=GenerationBatch.State.QUEUED
        )
        .exclude(pk=batch.pk)
        .select_related("prompt")
        .order_by("pk")
    )
    for candidate in candidates:
        if held + len(candidate.seed_indices) > images:
            break
        if claim_batch(candidate.pk, worker, lease_seconds()):
            companions.append(candidate)
            held += len(candidate.seed_indices)
    return companions


def release_batches(batch_ids: Sequence[int], worker: str) -> list[int]:
    """Give back the batches this worker still holds, as if never claimed; returns their ids."""
    held = GenerationBatch.objects.filter(pk__in=batch_ids, state=GenerationBatch.State.RUNNING, worker=worker)
    released = sorted(held.values_list("pk", flat=True))
    held.filter(pk__in=released).update(
        state=GenerationBatch.State.QUEUED, worker="", heartbeat=None, attempts=F("attempts") - 1
    )
    return released
