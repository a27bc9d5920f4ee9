"""Simulated raters against gunicorn + Postgres on loopback: latency of "next pair" and "submit".

    python bench/rating_load.py                           # 200 raters at human pace, then saturation
    python bench/rating_load.py --raters 50 --duration 20 --think 2 --saturation-raters 16

Each rater is a thread that walks the real pages: entry link, consent, instructions, then one loop
per pair, on one of two paths:

- page: "next pair" (GET of the rating page, which claims the lookahead pair), the pair's two
  images, a think time, and "submit" (the form POST, answered 303): what a browser without
  JavaScript does;
- json: the pair's two images, a think time, and "submit" to answer.json, whose reply is the next
  pair: what the page's script does.

The human-pace phase uses --path; the saturation phase runs both paths one after the other in the
same run and prints the ratio of their loop rates. Load generator and server share this machine's
cores, so the numbers are lower bounds for the server. SQL statements per request are counted in-process with
CaptureQueriesContext against the same database. Needs PostgreSQL (DATABASE_URL, default a
`rating_bench` database on 127.0.0.1); without it the benchmark says so and exits.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlencode, urlparse

ROOT = Path(__file__).resolve().parent.parent
BENCH_SECRET_KEY = "bench-only-not-a-deployment-key-" + "b" * 32  # production settings require one
DEFAULT_DATABASE = "postgres://postgres@127.0.0.1:5432/rating_bench"
MAX_RATERS = 1000
MAX_SECONDS = 300
TOKEN = re.compile(r'name="assignment" value="([^"]+)"')
PAIR_IMAGE = re.compile(r'src="(/i/[^"]+)"')
PATHS = ("page", "json")
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--raters", type=int, default=200, help="raters at human pace (default 200)")
    parser.add_argument("--think", type=float, default=5.0, help="mean seconds a rater looks at a pair (default 5)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of the human-pace phase (default 30)")
    parser.add_argument("--saturation-raters", type=int, default=32, help="raters with no think time (0 skips)")
    parser.add_argument("--saturation-duration", type=float, default=15.0, help="seconds per path (default 15)")
    parser.add_argument("--path", choices=PATHS, default="json", help="the human-pace phase's path (default json)")
    parser.add_argument("--pairs", type=int, default=16000, help="pairs in the study (default 16000, the paper's size)")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 2, help="gunicorn sync workers (default: one per core)"
    )
    parser.add_argument("--threads", type=int, default=1, help="gunicorn threads per worker (>1 uses gthread)")
    parser.add_argument("--no-images", action="store_true", help="skip fetching the two images of each pair")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if not 1 <= args.raters <= MAX_RATERS or not 0 <= args.saturation_raters <= MAX_RATERS:
        parser.error(f"--raters: expected 1..{MAX_RATERS}")
    if not 0 < args.duration <= MAX_SECONDS or not 0 <= args.saturation_duration <= MAX_SECONDS:
        parser.error(f"--duration: expected 0..{MAX_SECONDS} seconds")
    return args


# --------------------------------------------------------------------------------------------
# Database and server
# --------------------------------------------------------------------------------------------


def ensure_database(url: str) -> bool:
    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin = parsed._replace(path="/postgres").geturl()
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as connection:
            if not connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
                connection.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        print(f"SKIPPED: needs PostgreSQL at {parsed.hostname}:{parsed.port or 5432} ({exc})".splitlines()[0])
        return False
    return True


def setup_django(env: dict) -> None:
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studyapp.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def seed_study(pairs: int):
    """A published study with `pairs` pairs (10% overlap), built with bulk inserts; reused and reset if present."""
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage
    from django.db import transaction

    from studyapp.models import (
        Answer,
        Assignment,
        Comparison,
        Concept,
        GeneratedImage,
        GenerationRun,
        Method,
        Pair,
        Prompt,
        PromptSet,
        Rater,
        ReferenceImage,
        Study,
    )
    from tests.factories import png_bytes

    slug = f"bench-{pairs}"
    study = Study.objects.filter(slug=slug).first()
    if study is not None:
        Answer.objects.filter(pair__study=study).delete()
        Assignment.objects.filter(pair__study=study).delete()
        Rater.objects.filter(study=study).delete()
        study.pairs.update(ratings_count=0)
        return study
    with transaction.atomic():
        concept, _ = Concept.objects.get_or_create(slug="bench-dog", defaults={"superclass": "dog", "kind": "live"})
        if not concept.references.exists():
            for index in range(4):
                reference = ReferenceImage(concept=concept, content_hash=f"{index:064d}", original_name=f"{index}.png")
                reference.image.save(
                    f"{index}.png", ContentFile(png_bytes((30 * index, 90, 160), (256, 256))), save=False
                )
                reference.save()
        prompts = PromptSet.objects.create(slug=f"{slug}-prompts", name="bench prompts")
        for position in range(25):
            Prompt.objects.create(prompt_set=prompts, position=position, template=f"a {{concept}} in scene {position}")
        seeds = -(-pairs // 25)
        methods = [
            Method.objects.get_or_create(name=f"{slug}-{sampler}", defaults={"sampler": sampler})[0]
            for sampler in ("base", "mixed")
        ]
        images = {}
        for method, color in zip(methods, ((200, 40, 40), (40, 40, 200)), strict=False):
            name = default_storage.save(f"generated/bench/{method.name}.png", ContentFile(png_bytes(color, (512, 512))))
            run = GenerationRun.objects.create(method=method, prompt_set=prompts, state=GenerationRun.State.DONE)
            rows = [
                GeneratedImage(
                    run=run,
                    method=method,
                    concept=concept,
                    prompt=prompt,
                    seed_index=seed,
                    content_hash=f"{method.pk}-{seed}",
                    file=name,
                )
                for prompt in prompts.prompts.all()
                for seed in range(seeds)
            ]
            images[method.pk] = GeneratedImage.objects.bulk_create(rows, batch_size=2000)
        study = Study.objects.create(slug=slug, title="bench", gold_rate=0, attention_rate=0, pairs_per_rater=80)
        comparison = Comparison.objects.create(study=study, method_a=methods[1], method_b=methods[0])
        rng = random.Random(0)
        rows = [
            Pair(
                study=study,
                comparison=comparison,
                image_a=a,
                image_b=b,
                concept=concept,
                prompt_id=a.prompt_id,
                seed_index=a.seed_index,
                in_overlap=rng.random() < 0.1,
                target_ratings=3,
            )
            for a, b in list(zip(images[methods[1].pk], images[methods[0].pk], strict=False))[:pairs]
        ]
        Pair.objects.bulk_create(rows, batch_size=2000)
        study.state = Study.State.PUBLISHED
        study.save()
    return study


def analyze() -> None:
    """Fresh planner statistics, as autovacuum would have them on a study that has been live for a minute."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE studyapp_pair")
        cursor.execute("ANALYZE studyapp_assignment")


def start_gunicorn(args, env: dict) -> subprocess.Popen:
    command = [
        str(ROOT / ".venv" / "bin" / "gunicorn"),
        "studyapp.wsgi:application",
        "--bind",
        f"127.0.0.1:{args.port}",
        "--workers",
        str(args.workers),
        "--log-level",
        "warning",
        "--timeout",
        "60",
    ]
    if args.threads > 1:
        command += ["--worker-class", "gthread", "--threads", str(args.threads)]
    server = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env, "PYTHONWARNINGS": "ignore"})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            status, _, _ = request(args.port, "GET", "/healthz")
            if status == 200:
                return server
        except OSError:
            time.sleep(0.2)
    server.terminate()
    raise RuntimeError(f"gunicorn did not answer on 127.0.0.1:{args.port} within 30 s")


# --------------------------------------------------------------------------------------------
# Simulated raters
# --------------------------------------------------------------------------------------------


def request(port: int, method: str, path: str, body: dict | None = None, cookies: dict | None = None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in (cookies or {}).items())} if cookies else {}
    data = None
    if body is not None:
        data = urlencode(body)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    try:
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        content = response.read()
        if cookies is not None:
            for header in response.headers.get_all("Set-Cookie") or []:
                name, _, rest = header.partition("=")
                cookies[name.strip()] = rest.split(";", 1)[0]
        return response.status, response.headers, content
    finally:
        connection.close()


class Recorder:
    def __init__(self):
        self.lock = threading.Lock()
        self.latencies = defaultdict(list)
        self.errors = defaultdict(int)
        self.loops = 0

    def timed(self, kind: str, port: int, method: str, path: str, expect: int, **kwargs):
        started = time.perf_counter()
        try:
            status, headers, content = request(port, method, path, **kwargs)
        except OSError as exc:
            status, headers, content = f"{type(exc).__name__}", {}, b""
        elapsed = (time.perf_counter() - started) * 1000
        with self.lock:
            if status == expect:
                self.latencies[kind].append(elapsed)
            else:
                self.errors[f"{kind}: {status}"] += 1
        return status, headers, content


def enter_study(port: int, link: str, cookies: dict) -> tuple[str, str]:
    """Entry link, consent and instructions; returns the rater's page and the HTML of their first pair."""
    status, headers, _ = request(port, "GET", f"/s/{link}/", cookies=cookies)
    if status != 302:
        raise RuntimeError(f"entry: {status}")
    home = headers["Location"]
    _, _, page = request(port, "GET", home, cookies=cookies)
    csrf = CSRF.search(page.decode()).group(1)
    request(port, "POST", f"{home}consent", {"consent": "yes", "csrfmiddlewaretoken": csrf}, cookies)
    request(port, "POST", f"{home}start", {"csrfmiddlewaretoken": csrf}, cookies)
    return home, request(port, "GET", home, cookies=cookies)[2].decode()


def answer_body(rng: random.Random, token: str, csrf: str) -> dict:
    answer = {q: rng.choice("120") for q in ("text", "image", "overall")}
    return {"assignment": token, "csrfmiddlewaretoken": csrf, "response_ms": "4000", **answer}


def run_rater(
    port: int, link: str, deadline: float, think: float, images: bool, recorder: Recorder, seed: int, path: str
):
    rng = random.Random(seed)
    cookies: dict = {}
    if think:
        time.sleep(rng.uniform(0, think))  # arrivals spread over the first think time
    try:
        home, first_page = enter_study(port, link, cookies)
    except (OSError, RuntimeError) as exc:
        with recorder.lock:
            recorder.errors[str(exc) if isinstance(exc, RuntimeError) else f"entry: {type(exc).__name__}"] += 1
        return
    loop = page_loop if path == "page" else json_loop
    loop(port, home, first_page, deadline, think, images, recorder, rng, cookies)


def page_loop(port, home, first_page, deadline, think, images, recorder, rng, cookies):
    """GET the rating page, its two images, POST the form: two page requests per pair."""
    while time.monotonic() < deadline:
        status, _, page = recorder.timed("next pair", port, "GET", home, 200, cookies=cookies)
        if status != 200:
            return
        html = page.decode()
        token = TOKEN.search(html)
        if token is None:
            return  # finished
        if images:
            for image in PAIR_IMAGE.findall(html):
                recorder.timed("image", port, "GET", image, 200)
        if think:
            time.sleep(think * rng.uniform(0.5, 1.5))
        body = answer_body(rng, token.group(1), CSRF.search(html).group(1))
        recorder.timed("submit", port, "POST", f"{home}answer", 303, body=body, cookies=cookies)
        with recorder.lock:
            recorder.loops += 1


def json_loop(port, home, first_page, deadline, think, images, recorder, rng, cookies):
    """The two images, POST to answer.json, whose reply is the next pair: one page request per pair."""
    csrf = CSRF.search(first_page).group(1)
    token = TOKEN.search(first_page)
    if token is None:
        return
    pair = {"assignment": token.group(1), "images": PAIR_IMAGE.findall(first_page)}
    while time.monotonic() < deadline:
        if images:
            for image in pair["images"]:
                recorder.timed("image", port, "GET", image, 200)
        if think:
            time.sleep(think * rng.uniform(0.5, 1.5))
        body = answer_body(rng, pair["assignment"], csrf)
        status, _, reply = recorder.timed(
            "submit + next pair", port, "POST", f"{home}answer.json", 200, body=body, cookies=cookies
        )
        if status != 200:
            return
        with recorder.lock:
            recorder.loops += 1
        pair = json.loads(reply)
        if pair["state"] != "pair":
            return  # finished


def server_cpu_seconds(master_pid: int, database: str) -> dict[str, float]:
    """CPU time used so far by the gunicorn workers and by the Postgres backends serving this database."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = {"django": 0, "postgres": 0}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        used = int(stat[11]) + int(stat[12])  # utime + stime
        if int(stat[1]) == master_pid:
            total["django"] += used
        elif command.startswith("postgres:") and f" {database} " in f"{command} ":
            total["postgres"] += used
    return {name: value / ticks for name, value in total.items()}


def run_phase(
    port: int, link: str, raters: int, seconds: float, think: float, images: bool, path: str, server=None
) -> dict:
    recorder = Recorder()
    cpu_before, client_before = (server_cpu_seconds(*server) if server else {}), time.process_time()
    started = time.monotonic()
    deadline = started + seconds
    threads = [
        threading.Thread(
            target=run_rater, args=(port, link, deadline, think, images, recorder, seed, path), daemon=True
        )
        for seed in range(raters)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 60)
    elapsed = time.monotonic() - started
    result = {"path": path, **summarize(recorder, elapsed, raters, think)}
    loops = max(recorder.loops, 1)
    if server:
        cpu_after = server_cpu_seconds(*server)
        for name, before in cpu_before.items():
            result[f"{name}_cpu_ms_per_loop"] = round((cpu_after[name] - before) * 1000 / loops, 1)
    result["client_cpu_ms_per_loop"] = round((time.process_time() - client_before) * 1000 / loops, 1)
    return result


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summarize(recorder: Recorder, elapsed: float, raters: int, think: float) -> dict:
    result = {
        "raters": raters,
        "think_s": think,
        "seconds": round(elapsed, 1),
        "loops_per_s": round(recorder.loops / elapsed, 1),
        "load_average_1min": round(os.getloadavg()[0], 2),  # other work on the machine skews everything
    }
    for kind, values in recorder.latencies.items():
        result[kind] = {
            "count": len(values),
            "per_s": round(len(values) / elapsed, 1),
            "p50_ms": round(percentile(values, 50), 1),
            "p95_ms": round(percentile(values, 95), 1),
            "p99_ms": round(percentile(values, 99), 1),
            "mean_ms": round(statistics.fmean(values), 1),
        }
    result["errors"] = dict(recorder.errors)
    return result


# --------------------------------------------------------------------------------------------
# SQL statements per request, in-process
# --------------------------------------------------------------------------------------------


def count_queries(study) -> dict:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    home = client.get(f"/s/{study.open_link_token}/")["Location"]
    client.post(f"{home}consent", {"consent": "yes"})
    client.post(f"{home}start")
    counts = defaultdict(list)
    for _ in range(6):
        with CaptureQueriesContext(connection) as captured:
            page = client.get(home).content.decode()
        counts["next pair"].append(len(captured.captured_queries))
        token = TOKEN.search(page).group(1)
        image = re.search(r'src="(/i/[^"]+)"', page).group(1)
        with CaptureQueriesContext(connection) as captured:
            client.get(image)
        counts["image"].append(len(captured.captured_queries))
        with CaptureQueriesContext(connection) as captured:
            client.post(f"{home}answer", {"assignment": token, "text": "1", "image": "2", "overall": "0"})
        counts["submit"].append(len(captured.captured_queries))
    token = TOKEN.search(client.get(home).content.decode()).group(1)
    for _ in range(6):
        with CaptureQueriesContext(connection) as captured:
            reply = client.post(f"{home}answer.json", {"assignment": token, "text": "1", "image": "2", "overall": "0"})
        counts["submit + next pair"].append(len(captured.captured_queries))
        token = reply.json()["assignment"]
    # The first page claims two pairs (on screen + lookahead); later ones claim one.
    return {
        kind: {"first": values[0], "steady_median": statistics.median(values[1:]), "max": max(values)}
        for kind, values in counts.items()
    }


def cpu_in_process(study, pairs: int = 120) -> dict:
    """Median CPU ms of each request, Django test client in this process (Postgres's share not included).

    Steadier than loop rates on a shared machine: other processes slow this one down but hardly change
    how much CPU a request needs. A loop is a pair: page path = next pair + 2 images + submit; json path =
    2 images + submit + next pair.
    """
    from django.test import Client

    def rater():
        client = Client()
        home = client.get(f"/s/{study.open_link_token}/")["Location"]
        client.post(f"{home}consent", {"consent": "yes"})
        client.post(f"{home}start")
        return client, home, client.get(home).content.decode()

    def timed(kind, call, *args):
        started = time.process_time()
        response = call(*args)
        if getattr(response, "streaming", False):
            b"".join(response.streaming_content)
        cpu[kind].append((time.process_time() - started) * 1000)
        return response

    cpu = defaultdict(list)
    answer = {"text": "1", "image": "2", "overall": "0"}
    client, home, page = rater()
    for index in range(pairs):
        if index % 60 == 59:  # well inside the quota of 80
            client, home, page = rater()
        page = timed("next pair", client.get, home).content.decode()
        for image in PAIR_IMAGE.findall(page):
            timed("image", client.get, image)
        token = TOKEN.search(page).group(1)
        timed("submit", client.post, f"{home}answer", {"assignment": token, **answer})
    client, home, page = rater()
    token = TOKEN.search(page).group(1)
    for index in range(pairs):
        if index % 60 == 59:
            client, home, page = rater()
            token = TOKEN.search(page).group(1)
        reply = timed("submit + next pair", client.post, f"{home}answer.json", {"assignment": token, **answer})
        token = reply.json()["assignment"]
    median = {kind: round(statistics.median(values), 2) for kind, values in cpu.items()}
    page_loop = median["next pair"] + 2 * median["image"] + median["submit"]
    json_loop = 2 * median["image"] + median["submit + next pair"]
    return {
        "median_ms": median,
        "page_loop_ms": round(page_loop, 2),
        "json_loop_ms": round(json_loop, 2),
        "ratio_page_to_json": round(page_loop / json_loop, 2),
    }


def explain_claim(study) -> str:
    """The plan of the engine's own claim query, for a rater who has answered a few pairs."""
    from django.db import transaction
    from django.utils import timezone

    from studyapp.models import Pair
    from studyapp.rating.assignment import CANDIDATES, claim_queue

    rater = study.raters.order_by("-id").first()
    with transaction.atomic():
        queue = claim_queue(rater, study, Pair.Kind.REGULAR, timezone.now())
        return queue.select_for_update(skip_locked=True, of=("self",), no_key=True)[:CANDIDATES].explain(analyze=True)


def main() -> int:
    args = parse_args()
    database = os.environ.get("DATABASE_URL", DEFAULT_DATABASE)
    if not database.startswith("postgres") or not ensure_database(database):
        if not database.startswith("postgres"):
            print(f"SKIPPED: needs a PostgreSQL DATABASE_URL, got {database!r}")
        return 0
    env = {
        "DATABASE_URL": database,
        "MEDIA_ROOT": os.environ.get("BENCH_MEDIA_ROOT", "/tmp/rating-bench-media"),
        "DEBUG": "0",
        "SECRET_KEY": os.environ.get("SECRET_KEY") or BENCH_SECRET_KEY,
        # Every simulated rater arrives from loopback at once: lift the admission limits meant for the public.
        "RATER_NEW_PER_ADDRESS_PER_MINUTE": "0",
        "RATER_MAX_ACTIVE": "0",
    }
    setup_django(env)
    started = time.monotonic()
    study = seed_study(args.pairs)
    analyze()
    print(f"study {study.slug}: {study.pairs.count()} pairs, seeded in {time.monotonic() - started:.1f} s")
    queries = count_queries(study)
    print("SQL statements per request:", json.dumps(queries))
    cpu = cpu_in_process(study)
    print("Django CPU per request, in-process:", json.dumps(cpu))
    plan = explain_claim(study)
    print("claim query plan:\n  " + plan.replace("\n", "\n  "))
    from django.db import connection

    connection.close()
    socket.setdefaulttimeout(60)
    server = start_gunicorn(args, env)
    config = f"gunicorn {'gthread' if args.threads > 1 else 'sync'} x{args.workers}" + (
        f" x{args.threads} threads" if args.threads > 1 else ""
    )
    results = {
        "server": config,
        "pairs": args.pairs,
        "queries": queries,
        "cpu_in_process": cpu,
        "claim_plan": plan.splitlines(),
    }
    try:
        images = not args.no_images
        measured = (server.pid, urlparse(database).path.lstrip("/"))
        results["human_pace"] = run_phase(
            args.port, study.open_link_token, args.raters, args.duration, args.think, images, args.path, measured
        )
        print(f"\n{config}, {args.raters} raters, think {args.think} s, {args.path} path:")
        print(json.dumps(results["human_pace"], indent=1))
        if args.saturation_raters:
            results["saturation"] = {}
            for path in PATHS:
                results["saturation"][path] = run_phase(
                    args.port,
                    study.open_link_token,
                    args.saturation_raters,
                    args.saturation_duration,
                    0.0,
                    images,
                    path,
                    measured,
                )
                print(f"\nsaturation: {args.saturation_raters} raters, no think time, {path} path:")
                print(json.dumps(results["saturation"][path], indent=1))
            rates = {path: results["saturation"][path]["loops_per_s"] for path in PATHS}
            results["saturation_ratio_json_to_page"] = round(rates["json"] / max(rates["page"], 0.1), 2)
            print(
                f"\nloops/s at {args.saturation_raters} raters: page {rates['page']}, json {rates['json']}, "
                f"ratio json/page {results['saturation_ratio_json_to_page']}"
            )
    finally:
        server.terminate()
        server.wait(timeout=30)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
