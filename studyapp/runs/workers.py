"""Who will generate a queued run (or train a fine-tune): Celery workers on the gpu queue, this web process,
or nobody yet.

Without CELERY_BROKER_URL tasks run in-process; a run or fine-tune saved from a page is then done by a thread
of the web process (``in_background``), so the page answers at once and shows the progress as it comes.
With a broker, the gpu queue's consumers are asked for (cached briefly, the ask takes up to a second).
"""

import logging
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db import connections, transaction

log = logging.getLogger(__name__)

GPU_QUEUE = "gpu"
STATUS_CACHE_KEY = "studyapp:gpu-workers"
STATUS_CACHE_SECONDS = 10
INSPECT_TIMEOUT_SECONDS = 1.0

_local = threading.local()


@dataclass(frozen=True)
class WorkerStatus:
    mode: str  # "in-process", "workers" or "none"
    workers: tuple[str, ...] = ()

    @property
    def message(self) -> str:
        if self.mode == "in-process":
            return (
                "No Celery broker is configured (CELERY_BROKER_URL), so runs saved here are generated in the "
                "background by the web server process, one batch after another."
            )
        if self.mode == "none":
            return (
                f"No worker is consuming the {GPU_QUEUE} queue: queued runs wait until one starts "
                "(make worker, or make worker-gpu on a GPU host)."
            )
        return f"{len(self.workers)} worker(s) on the {GPU_QUEUE} queue: {', '.join(self.workers)}."

    def launched(self, runs: int) -> str:
        """What to tell someone who just saved `runs` runs."""
        if self.mode == "in-process":
            return f"{runs} run(s) are being generated in the background (no Celery worker is configured)."
        if self.mode == "none":
            return f"{runs} run(s) queued, but no worker is consuming the {GPU_QUEUE} queue yet: start one."
        return f"{runs} run(s) queued for {len(self.workers)} worker(s)."


def gpu_worker_status() -> WorkerStatus:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return WorkerStatus("in-process")
    cached = cache.get(STATUS_CACHE_KEY)
    if cached is None:
        cached = _ask_workers()
        cache.set(STATUS_CACHE_KEY, cached, STATUS_CACHE_SECONDS)
    return WorkerStatus("workers" if cached else "none", tuple(cached))


def _ask_workers() -> list[str]:
    from studyapp.celery import app

    try:
        queues = app.control.inspect(timeout=INSPECT_TIMEOUT_SECONDS).active_queues() or {}
    except Exception as exc:  # an unreachable broker is "nobody consuming", said on the page
        log.warning("asking the workers for their queues failed: %s", exc)
        return []
    return sorted(name for name, consumed in queues.items() if any(q.get("name") == GPU_QUEUE for q in consumed))


@contextmanager
def in_background() -> Iterator[None]:
    """Within it, batches sent without a broker go to this process's generation thread after the commit."""
    previous = getattr(_local, "background", False)
    _local.background = True
    try:
        yield
    finally:
        _local.background = previous


def wants_background() -> bool:
    return settings.CELERY_TASK_ALWAYS_EAGER and getattr(_local, "background", False)


def generate_after_commit(batch_id: int) -> None:
    transaction.on_commit(lambda: _pending.put(("batch", batch_id)) or _ensure_generation_thread())


def fine_tune_after_commit(run_id: int) -> None:
    transaction.on_commit(lambda: _pending.put(("fine-tune", run_id)) or _ensure_generation_thread())


# One thread per process does the batches and fine-tunes handed to it, in order, like a solo worker would.
_pending: "queue.Queue[tuple[str, int]]" = queue.Queue()
_thread_lock = threading.Lock()
_thread: threading.Thread | None = None


def _ensure_generation_thread() -> None:
    global _thread
    with _thread_lock:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_generate_forever, name="studyapp-generation", daemon=True)
            _thread.start()


def _generate_forever() -> None:
    from studyapp.runs.finetune_job import run_fine_tune
    from studyapp.runs.worker import run_batch

    jobs = {"batch": run_batch, "fine-tune": run_fine_tune}
    while True:
        kind, pk = _pending.get()
        try:
            jobs[kind](pk)  # records its own failure on its row
        except Exception:
            log.exception("background %s %s stopped", kind, pk)
        finally:
            connections.close_all()
