"""What must front gunicorn: the latency of a normal request while three slow clients hold half-sent
requests, against sync workers, threaded (gthread) workers, and nginx buffering in front of sync.

Each slow client opens a connection, sends part of a request line and headers, then one more header
byte per second and never finishes. Meanwhile one normal client asks for /healthz again and again
with a timeout; a request that times out counts as blocked. The server runs production settings
(DEBUG=0) on a throwaway SQLite file, so nothing but the front end differs between setups.

    python bench/slow_clients.py                 # 2 workers, 3 slow clients, 20 s per setup
    python bench/slow_clients.py --seconds 40 --workers 4
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECRET_KEY = "bench-only-not-a-deployment-key-" + "s" * 32
NGINX_CONFIG = """
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {folder}/body;
  proxy_temp_path {folder}/proxy;
  fastcgi_temp_path {folder}/fastcgi;
  uwsgi_temp_path {folder}/uwsgi;
  scgi_temp_path {folder}/scgi;
  client_header_timeout 10s;
  client_body_timeout 10s;
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://127.0.0.1:{upstream};
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_request_buffering on;
      proxy_buffering on;
    }}
  }}
}}
"""


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (default 2)")
    parser.add_argument("--threads", type=int, default=8, help="threads per gthread worker (default 8)")
    parser.add_argument("--slow", type=int, default=3, help="slow clients (default 3)")
    parser.add_argument("--seconds", type=float, default=20, help="measuring time per setup (default 20)")
    parser.add_argument("--timeout", type=float, default=5, help="a normal request slower than this is blocked")
    return parser.parse_args()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, deadline: float = 60) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


def start_gunicorn(port: int, worker_class: str, args, folder: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "studyapp.settings",
        "DEBUG": "0",
        "SECRET_KEY": SECRET_KEY,
        "DATABASE_URL": f"sqlite:///{folder / 'bench.sqlite3'}",
        "CELERY_BROKER_URL": "",
        "MEDIA_ROOT": str(folder / "media"),
        "LOG_LEVEL": "WARNING",
    }
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "studyapp.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(args.workers),
        "--worker-class",
        worker_class,
        "--timeout",
        "30",
    ]
    if worker_class == "gthread":
        command += ["--threads", str(args.threads)]
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port)
    warm_up(port, requests=4 * args.workers)
    return server


def warm_up(port: int, requests: int) -> None:
    """The port opens before the workers have loaded Django; ask until each has answered."""
    answered, end = 0, time.monotonic() + 120
    while answered < requests and time.monotonic() < end:
        latencies, _ = normal_latencies(port, 0.01, timeout=30)
        answered += len(latencies)
    if answered < requests:
        raise RuntimeError("gunicorn did not answer /healthz within 120 s")


def start_nginx(port: int, upstream: int, folder: Path) -> subprocess.Popen:
    config = folder / "nginx.conf"
    config.write_text(NGINX_CONFIG.format(folder=folder, port=port, upstream=upstream))
    server = subprocess.Popen(
        [shutil.which("nginx"), "-c", str(config), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port)
    return server


class SlowClient(threading.Thread):
    """Holds one connection with a request that is never finished."""

    def __init__(self, port: int, stop: threading.Event):
        super().__init__(daemon=True)
        self.port, self.stop = port, stop

    def run(self):
        while not self.stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as connection:
                    connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                    while not self.stop.wait(1.0):
                        connection.sendall(b"a")
            except OSError:
                pass  # the server gave up on us: open another half-sent request at once


def normal_latencies(port: int, seconds: float, timeout: float) -> tuple[list[float], int]:
    latencies, blocked = [], 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.monotonic()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
                connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                reply = connection.recv(64)
            if not reply.startswith(b"HTTP/1.1 200"):
                raise OSError(reply[:40])
            latencies.append(time.monotonic() - started)
        except OSError:
            blocked += 1
        time.sleep(0.05)
    return latencies, blocked


def measure(name: str, port: int, args) -> dict:
    quiet, _ = normal_latencies(port, 2, args.timeout)
    stop = threading.Event()
    slow = [SlowClient(port, stop) for _ in range(args.slow)]
    for client in slow:
        client.start()
    time.sleep(1.0)  # a benchmark, not a test: let the slow clients take their connections
    latencies, blocked = normal_latencies(port, args.seconds, args.timeout)
    stop.set()
    row = {
        "setup": name,
        "quiet_median_ms": 1000 * statistics.median(quiet) if quiet else None,
        "answered": len(latencies),
        "blocked": blocked,
        "median_ms": 1000 * statistics.median(latencies) if latencies else None,
        "p95_ms": 1000 * statistics.quantiles(latencies, n=20)[-1] if len(latencies) >= 20 else None,
        "max_ms": 1000 * max(latencies) if latencies else None,
    }
    print(format_row(row, args.timeout), flush=True)
    return row


def format_row(row: dict, timeout: float) -> str:
    def ms(value):
        return "-" if value is None else f"{value:.0f}"

    return (
        f"{row['setup']:<34} quiet {ms(row['quiet_median_ms']):>5} ms | with slow clients: "
        f"{row['answered']:>4} answered, {row['blocked']:>3} blocked (>{timeout:g} s), "
        f"median {ms(row['median_ms']):>5} ms, p95 {ms(row['p95_ms']):>5} ms, max {ms(row['max_ms']):>5} ms"
    )


def run_setup(name: str, worker_class: str, args, with_nginx: bool = False) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        upstream = free_port()
        servers = [start_gunicorn(upstream, worker_class, args, folder)]
        port = upstream
        try:
            if with_nginx:
                port = free_port()
                servers.append(start_nginx(port, upstream, folder))
            return measure(name, port, args)
        finally:
            for server in reversed(servers):
                server.terminate()
                server.wait(timeout=30)


def main() -> int:
    args = parse_args()
    print(
        f"{args.slow} slow clients, {args.workers} workers, {args.seconds:g} s per setup, "
        f"a normal request slower than {args.timeout:g} s is blocked"
    )
    run_setup(f"gunicorn sync x{args.workers}", "sync", args)
    run_setup(f"gunicorn gthread x{args.workers}x{args.threads}", "gthread", args)
    if shutil.which("nginx"):
        run_setup(f"nginx -> gunicorn sync x{args.workers}", "sync", args, with_nginx=True)
        run_setup(f"nginx -> gunicorn gthread x{args.workers}x{args.threads}", "gthread", args, with_nginx=True)
    else:
        print("nginx: not installed (apt-get install nginx), its rows are left out")
    return 0


if __name__ == "__main__":
    sys.exit(main())
