"""A run's progress: images done out of images total, throughput since it (re)started, and the time left;
for a fine-tune, steps done out of steps total, the loss, steps per second and the time left.

"Progress" means this and only this in the project: how far a run is. Everything is read
from the database, in a fixed number of queries however many runs are asked about.
"""

from collections.abc import Iterable
from dataclasses import asdict, dataclass

from django.db.models import Count, F, Max, Q
from django.utils import timezone

from studyapp.models import GeneratedImage, GenerationBatch, GenerationRun

Run = GenerationRun.State


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


def run_progress(run: GenerationRun) -> RunProgress:
    """The progress of one run, re-reading its state first (a worker may have moved it on)."""
    run.refresh_from_db(fields=["state", "error", "images_total", "started", "finished"])
    return runs_progress([run])[run.pk]


def runs_progress(runs: Iterable[GenerationRun]) -> dict[int, RunProgress]:
    """Run id -> progress, for runs just read from the database; three queries whatever their number."""
    runs = list(runs)
    images = _image_counts([run.pk for run in runs])
    batches = _batch_counts([run.pk for run in runs])
    return {run.pk: _progress(run, images.get(run.pk, {}), batches.get(run.pk, {})) for run in runs}


def _image_counts(run_ids: list[int]) -> dict[int, dict]:
    since_start = Q(created__gte=F("run__started"))
    rows = (
        GeneratedImage.objects.filter(run_id__in=run_ids)
        .values("run_id")
        .annotate(done=Count("id"), recent=Count("id", filter=since_start), last=Max("created", filter=since_start))
        .order_by()
    )
    return {row["run_id"]: row for row in rows}


def _batch_counts(run_ids: list[int]) -> dict[int, dict[str, int]]:
    rows = GenerationBatch.objects.filter(run_id__in=run_ids).values_list("run_id", "state").annotate(n=Count("id"))
    counts: dict[int, dict[str, int]] = {}
    for run_id, state, number in rows.order_by():
        counts.setdefault(run_id, {})[state] = number
    return counts


def _progress(run: GenerationRun, images: dict, batches: dict[str, int]) -> RunProgress:
    done = images.get("done", 0)
    rate = _images_per_second(run, images.get("recent", 0), images.get("last"))
    eta = max(run.images_total - done, 0) / rate if rate and run.state in (Run.RUNNING, Run.QUEUED) else None
    return RunProgress(run.pk, run.state, run.error, done, run.images_total, rate, eta, batches)


def _images_per_second(run: GenerationRun, recent: int, last) -> float | None:
    """Images made since the run (re)started, over the time until it finished, now, or its last image."""
    if not run.started:
        return None
    end = run.finished or (timezone.now() if run.state == Run.RUNNING else last)
    elapsed = (end - run.started).total_seconds() if end else 0
    return recent / elapsed if recent and elapsed > 0 else None


def fine_tune_progress(run) -> dict:
    """How far a fine-tune is: steps done / total, loss, steps per second, time left, as its worker last wrote.

    The keys `done`, `total`, `percent`, `state`, `error` and `eta_seconds` mean what they mean for a
    generation run, so the run pages' script follows both."""
    run.refresh_from_db()
    return {
        "run_id": run.pk,
        "state": run.state,
        "error": run.error,
        "done": run.step,
        "total": run.total_steps,
        "percent": round(100.0 * run.step / run.total_steps, 1) if run.total_steps else 0.0,
        "loss": run.loss,
        "steps_per_second": run.steps_per_second,
        "eta_seconds": run.eta_seconds if run.state == Run.RUNNING else None,
        "resumed_from": run.resumed_from,
        "attempts": run.attempts,
        "worker": run.worker,
        "heartbeat": run.heartbeat.isoformat() if run.heartbeat else None,
    }
