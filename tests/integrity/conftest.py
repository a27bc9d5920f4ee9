"""A live gunicorn on loopback with production settings (DEBUG=0) over the test database.

Integrity tests talk to it over real HTTP, as a hostile rater would. Rows a test creates must be
committed (the fixture asks for `transactional_db`) so the server's own connections see them.
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SECRET_FOR_TESTS = "integrity-tests-only-" + "x" * 40


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url(db: dict) -> str:
    user, host, port = db["USER"] or "postgres", db["HOST"] or "127.0.0.1", db["PORT"] or 5432
    return f"postgres://{user}@{host}:{port}/{db['NAME']}"


def server_environment(settings, **overrides) -> dict[str, str]:
    db = settings.DATABASES["default"]
    env = dict(os.environ)
    env.update(
        DEBUG="0",
        SECRET_KEY=SECRET_FOR_TESTS,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        DATABASE_URL=database_url(db),
        MEDIA_ROOT=str(settings.MEDIA_ROOT),
        SERVE_MEDIA="1",
        RESULTS_CACHE_SECONDS="0",
    )
    env.update({key: str(value) for key, value in overrides.items()})
    return env


def wait_until_serving(url: str, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}: {process.stderr.read()[-2000:]}")
        try:
            urlopen(url + "/", timeout=2)
            return
        except URLError as error:
            if getattr(error, "code", None):  # any HTTP answer means it is serving
                return
        except OSError:
            pass
        time.sleep(0.1)  # polling a socket for readiness, not synchronising with the code under test
    raise RuntimeError("gunicorn did not start serving in time")


@pytest.fixture
def start_gunicorn(settings, transactional_db, postgres):
    """Factory: start_gunicorn(workers=2, worker_class="sync", **env) -> base URL. Stopped after the test."""
    processes: list[subprocess.Popen] = []

    def start(workers: int = 2, worker_class: str = "sync", timeout: int = 30, **env_overrides) -> str:
        port = free_port()
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "studyapp.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--worker-class",
            worker_class,
            "--timeout",
            str(timeout),
            "--graceful-timeout",
            "2",
        ]
        process = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=server_environment(settings, **env_overrides),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        processes.append(process)
        url = f"http://127.0.0.1:{port}"
        wait_until_serving(url, process)
        return url

    yield start
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def live_server_url(start_gunicorn) -> str:
    return start_gunicorn()
