"""Images per second through Celery workers versus calling the library directly, on CPU with the tiny model.

Needs PostgreSQL and Redis (the same services as production):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/runs_bench CELERY_BROKER_URL=redis://127.0.0.1:6379/2 \
        .venv/bin/python bench/workers.py [--prompts 4 --seeds 4 --steps 10 --workers 1 2]

The direct figure is `generation.api.generate` in one warm process (images kept in memory). The Celery
figure is from submitting a run to its last image stored (task messages, leases, PNG encoding, files,
rows), with warm workers (the model is already loaded). The Redis db is emptied first.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE = "postgres://postgres@127.0.0.1:5432/runs_bench"
DEFAULT_BROKER = "redis://127.0.0.1:6379/2"
TEMPLATES = [
    "a {concept} in the snow",
    "a {concept} on the beach",
    "a {concept} in a city",
    "a {concept} in the jungle",
    "a {concept} on a wooden floor",
    "a {concept} with a city in the background",
]


def ensure_database(url: str) -> None:
    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin = parsed._replace(path="/postgres").geturl().replace("postgres://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True) as connection:
        if not connection.execute("select 1 from pg_database where datname = %s", [name]).fetchone():
            connection.execute(f'create database "{name}"')


def setup(args, media_root: Path, model_dir: Path) -> dict:
    env = {
        "DATABASE_URL": os.environ.get("DATABASE_URL", DEFAULT_DATABASE),
        "CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL", DEFAULT_BROKER),
        "MEDIA_ROOT": str(media_root),
        "GENERATION_MODEL": str(model_dir),
        "GENERATION_DEVICE": "cpu",
        "DJANGO_SETTINGS_MODULE": "studyapp.settings",
        "SECRET_KEY": os.environ.get("SECRET_KEY") or "bench-only-not-a-deployment-key-" + "b" * 32,
    }
    if not env["DATABASE_URL"].startswith("postgres"):
        sys.exit(f"bench/workers.py: expected a postgres:// DATABASE_URL, got {env['DATABASE_URL']!r}")
    ensure_database(env["DATABASE_URL"])
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    import redis

    redis.Redis.from_url(env["CELERY_BROKER_URL"]).flushdb()
    return env


def start_workers(count: int, env: dict, log_dir: Path) -> list[subprocess.Popen]:
    threads = str(max(1, (os.cpu_count() or 1) // count))
    processes = []
    for number in range(count):
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
            f"bench{number}-{os.getpid()}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "warning",
        ]
        worker_env = {**os.environ, **env, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": threads}
        with open(log_dir / f"worker{number}.log", "wb") as log:  # the worker keeps its own copy of the file
            processes.append(subprocess.Popen(command, cwd=ROOT, env=worker_env, stdout=log, stderr=subprocess.STDOUT))
    return processes


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait(timeout=30)


def submit(prompts: int, seeds: int, steps: int, label: str):
    from studyapp.models import Concept, Method, Prompt, PromptSet
    from studyapp.runs.launch import create_run

    concept, _ = Concept.objects.get_or_create(slug="bench-dog", defaults={"superclass": "dog", "kind": "live"})
    method, _ = Method.objects.get_or_create(name="bench-mixed", defaults={"sampler": "mixed", "params": {}})
    prompt_set, _ = PromptSet.objects.get_or_create(slug=f"bench-{prompts}", defaults={"name": "bench"})
    for position, template in enumerate(TEMPLATES[:prompts], start=1):
        Prompt.objects.get_or_create(prompt_set=prompt_set, position=position, defaults={"template": template})
    return create_run(
        method=method,
        prompt_set=prompt_set,
        concepts=[concept],
        seed_indices=list(range(seeds)),
        steps=steps,
        label=label,
    )


def wait_done(run, timeout: float = 1800) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.state in ("done", "failed"):
            if run.state == "failed":
                sys.exit(f"bench run failed: {run.error}")
            return time.monotonic()
        time.sleep(0.05)
    sys.exit("bench run timed out")


def through_celery(workers: int, args, env: dict, log_dir: Path) -> float:
    processes = start_workers(workers, env, log_dir)
    try:
        warm = submit(1, workers, args.steps, f"warm-up x{workers}")  # one batch per worker: each loads the model
        wait_done(warm)
        run = submit(args.prompts, args.seeds, args.steps, f"bench x{workers}")
        began = time.monotonic()
        ended = wait_done(run)
        return run.images.count() / (ended - began)
    finally:
        stop(processes)


def direct(args, model_dir: Path) -> float:
    from generation.api import GenerationRequest, generate

    def request(template: str, seeds: int) -> GenerationRequest:
        return GenerationRequest(
            model=str(model_dir),
            concept_token="sks",
            superclass="dog",
            prompt_template=template,
            sampler="mixed",
            params={},
            seed_indices=list(range(seeds)),
            steps=args.steps,
            device="cpu",
        )

    generate(request(TEMPLATES[0], 1))
    began = time.perf_counter()
    images = sum(len(generate(request(template, args.seeds))) for template in TEMPLATES[: args.prompts])
    return images / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        sys.path.insert(0, str(ROOT))
        from generation.tiny import ensure_tiny_model

        model_dir = ensure_tiny_model(scratch / "tiny")
        env = setup(args, scratch / "media", model_dir)
        images = args.prompts * args.seeds
        print(f"{images} images per measurement, {args.steps} steps, tiny model on CPU ({os.cpu_count()} cores)")
        print(f"direct, one process:          {direct(args, model_dir):6.2f} images/s")
        for count in args.workers:
            rate = through_celery(count, args, env, scratch)
            print(f"celery, {count} worker process(es): {rate:6.2f} images/s")


if __name__ == "__main__":
    main()
