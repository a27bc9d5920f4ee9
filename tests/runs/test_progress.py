"""A run's progress from the database: each run's own images and batches, however many runs are asked about."""

from datetime import timedelta

import pytest
from django.utils import timezone

from studyapp.models import GeneratedImage, GenerationBatch, GenerationRun
from studyapp.runs.progress import run_progress, runs_progress
from studyapp.runs.state import mark_run_started, refresh_run
from tests import factories
from tests.runs.factories import small_run

pytestmark = pytest.mark.django_db

TWO_PROMPTS = ("a {concept} in the snow", "a {concept} on the beach")


def store(run, count: int) -> None:
    batch = run.batches.first()
    for seed in range(count):
        factories.generated_image(run, batch.concept, batch.prompt, seed_index=seed)


def test_several_runs_each_get_their_own_counts():
    idle, busy, finished = (small_run(templates=TWO_PROMPTS, seeds=(0, 1, 2)) for _ in range(3))
    store(busy, 2)
    mark_run_started(busy.pk)
    store(finished, 3)
    GenerationBatch.objects.filter(run=finished).update(state=GenerationBatch.State.DONE)
    refresh_run(finished.pk)
    runs = list(GenerationRun.objects.filter(pk__in=[idle.pk, busy.pk, finished.pk]))
    found = runs_progress(runs)
    assert [(found[r.pk].done, found[r.pk].total) for r in (idle, busy, finished)] == [(0, 6), (2, 6), (3, 6)]
    assert [found[r.pk].state for r in (idle, busy, finished)] == ["queued", "running", "done"]
    assert found[idle.pk].batches == {"queued": 2} and found[finished.pk].batches == {"done": 2}
    assert found[idle.pk].images_per_second is None and found[idle.pk].eta_seconds is None


def test_throughput_counts_only_the_images_since_the_run_started():
    run = small_run(templates=TWO_PROMPTS, seeds=(0, 1, 2))
    store(run, 1)
    GeneratedImage.objects.filter(run=run).update(created=timezone.now() - timedelta(minutes=5))  # before the restart
    started = timezone.now() - timedelta(seconds=10)
    GenerationRun.objects.filter(pk=run.pk).update(state=GenerationRun.State.RUNNING, started=started)
    batch = run.batches.last()
    for seed in range(2):
        factories.generated_image(run, batch.concept, batch.prompt, seed_index=seed)
    progress = run_progress(run)
    assert progress.done == 3 and progress.percent == 50.0
    assert 2 / 11 < progress.images_per_second < 2 / 10 + 1e-9
    assert progress.eta_seconds == pytest.approx(3 / progress.images_per_second)
