"""Builders for generation-run tests: a small run on the tiny model, and counting what it stored."""

import time
from pathlib import Path

from studyapp.models import GenerationRun
from studyapp.runs.launch import create_run
from tests import factories

FAST_STEPS = 2


def small_run(
    sampler="base",
    params=None,
    concepts=1,
    templates=("a {concept} in the snow",),
    seeds=(0, 1),
    base_model="",
    steps=FAST_STEPS,
):
    """Validated and queued (eagerly, when no broker is set) like a run made from the admin."""
    method = factories.method(sampler=sampler, params=params)
    if base_model:
        method.base_model = base_model
        method.save()
    subjects = [factories.concept() for _ in range(concepts)]
    prompts = factories.prompt_set(templates=templates)
    return create_run(method=method, prompt_set=prompts, concepts=subjects, seed_indices=list(seeds), steps=steps)


def stored_files(media_root: Path) -> list[Path]:
    return sorted((Path(media_root) / "generated").glob("*/*.png"))


def slots(run: GenerationRun) -> list[tuple]:
    return sorted(run.images.values_list("concept_id", "prompt_id", "seed_index"))


def expected_slots(run: GenerationRun) -> list[tuple]:
    return sorted(
        (concept.pk, prompt.pk, seed)
        for concept in run.concepts.all()
        for prompt in run.prompt_set.prompts.all()
        for seed in run.seed_indices
    )


def rows_match_files(run_images, media_root: Path) -> bool:
    names = {Path(media_root) / image.file.name for image in run_images}
    return names == set(stored_files(media_root)) and all(path.stat().st_size > 0 for path in names)


def wait_for_other_sessions_to_close(timeout: float = 10) -> None:
    """Postgres ends another process's (or server thread's) session a moment after it lets go; the test
    database is dropped at the end of the run and refuses while a session is open."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "select count(*) from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0] == 0:
                return
            time.sleep(0.2)


def runs_with_images(count: int) -> list[GenerationRun]:
    """`count` queued runs of two batches each, one image stored in each, one of them started and running."""
    made = []
    for _ in range(count):
        run = small_run(templates=("a {concept} in the snow", "a {concept} on the beach"))
        batch = run.batches.first()
        factories.generated_image(run, batch.concept, batch.prompt, seed_index=0)
        made.append(run)
    return made
