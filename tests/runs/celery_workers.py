"""Real `celery worker` processes for the tests: started on the test database and the test's broker."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from tests.conftest import PROJECT_ROOT

WAIT_SECONDS = 150


def database_url() -> str:
    db = settings.DATABASES["default"]
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Workers:
    """Start and stop `celery worker` processes; their logs go to files, shown when a test fails."""

    def __init__(self, redis_url, media_root, model_dir, log_dir, generation_model=None):
        """``model_dir``: the tiny models (CLIP and DINO for scoring); ``generation_model``: the text-to-image
        model the workers use where a method names none (default: the tiny one)."""
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.worker_settings",
            "PYTHONPATH": str(PROJECT_ROOT),
            "DATABASE_URL": database_url(),
            "CELERY_BROKER_URL": redis_url,
            "MEDIA_ROOT": str(media_root),
            "GENERATION_MODEL": str(generation_model or model_dir),
            "TINY_MODEL_DIR": str(model_dir),
            "GENERATION_DEVICE": "cpu",
            "OMP_NUM_THREADS": "1",
        }
        self.log_dir = Path(log_dir)
        self.processes: list[subprocess.Popen] = []

    def start(self, hold: str = "", **env: str) -> subprocess.Popen:
        """Start a worker; `hold` names a deterministic stop of tests/worker_hooks.py (WORKER_HOLD), `env` adds
        to its environment (settings such as GENERATION_PACK_IMAGES)."""
        number = len(self.processes) + 1
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "studyapp",
            "worker",
            "-Q",
            "gpu,cpu",
            "--pool=solo",
            "--prefetch-multiplier=1",
            "-n",
            f"test{number}-{os.getpid()}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--include",
            "tests.worker_hooks",
            "-l",
            "info",
        ]
        env = {**self.env, **env, "WORKER_HOLD": hold}
        with open(self.log_dir / f"worker{number}.log", "wb") as log:  # the worker keeps its own copy of the file
            process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(process)
        return process

    def start_ready(self, count: int, timeout: float = 60, hold: str = "") -> None:
        """Start workers and wait until each says it is ready to take tasks."""
        first = len(self.processes) + 1
        for _ in range(count):
            self.start(hold)
        logs = [self.log_dir / f"worker{number}.log" for number in range(first, first + count)]
        deadline = time.monotonic() + timeout
        while not all(b" ready." in log.read_bytes() for log in logs):
            if time.monotonic() > deadline:
                pytest.fail(f"workers not ready after {timeout:.0f}s\n{self.logs()}")
            time.sleep(0.2)

    def kill(self, process: subprocess.Popen) -> None:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def stop(self, process: subprocess.Popen) -> None:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill(process)

    def logs(self) -> str:
        return "\n".join(
            f"== {p.name}\n{p.read_text(errors='replace')[-4000:]}" for p in sorted(self.log_dir.glob("*.log"))
        )


def wait_until(
    condition, workers: Workers, timeout: float = WAIT_SECONDS, what: str = "the runs to finish", every: float = 0.3
):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{workers.logs()}")
