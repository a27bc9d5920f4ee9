"""Real worker processes on real Redis and Postgres: the run completes exactly once whatever happens to them.

Each test starts `celery -A studyapp worker` as a subprocess on the test database (committed rows, so
transaction=True) and the test's broker; the tiny model runs on CPU with 2 steps.
"""

from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from studyapp.catalog.images import check_image_bytes
from studyapp.catalog.importers import add_reference_image
from studyapp.models import GeneratedImage, GenerationBatch, GenerationRun, MetricScore, Sweep
from studyapp.runs.launch import send_batches
from studyapp.runs.reconciler import reconcile
from studyapp.runs.sweeps import launch_sweep
from tests import factories
from tests.runs.celery_workers import wait_until
from tests.runs.factories import (
    FAST_STEPS,
    expected_slots,
    rows_match_files,
    slots,
    small_run,
    stored_files,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services, pytest.mark.slow]


def finished(*run_list) -> bool:
    states = GenerationRun.objects.filter(pk__in=[r.pk for r in run_list]).values_list("state", flat=True)
    return all(state in ("done", "failed", "cancelled") for state in states)


def half_done_batch(run) -> bool:
    """A batch is running and has stored some, not all, of its images: the moment to kill its worker."""
    for batch in GenerationBatch.objects.filter(run=run, state="running"):
        stored = GeneratedImage.objects.filter(run=run, concept=batch.concept_id, prompt=batch.prompt_id).count()
        if 0 < stored < len(batch.seed_indices):
            return True
    return False


def silent_for(run, seconds: float) -> bool:
    """Every running batch of the run has a heartbeat older than `seconds`."""
    recent = timezone.now() - timedelta(seconds=seconds)
    running = GenerationBatch.objects.filter(run=run, state="running")
    return running.exists() and not running.filter(heartbeat__gte=recent).exists()


def assert_exactly_once(run_list, media_root):
    for run in run_list:
        run.refresh_from_db()
        assert run.state == "done", run.error
        assert slots(run) == expected_slots(run)
    images = GeneratedImage.objects.filter(run__in=run_list)
    assert images.count() == sum(run.images_total for run in run_list)
    files = [path.relative_to(media_root).as_posix() for path in stored_files(media_root)]
    assert rows_match_files(images, media_root), f"rows {sorted(images.values_list('file', flat=True))} files {files}"


def test_a_worker_completes_a_small_sweep(workers, media_root):
    sweep = Sweep.objects.create(
        name="sw",
        sampler="mixed",
        grid=[{"w_s": 2.0, "w_c": 5.0}, {"w_s": 5.0, "w_c": 2.0}],
        prompt_set=factories.prompt_set(),
        seed_indices=[0, 1],
        steps=FAST_STEPS,
    )
    concept = factories.concept()
    sweep.concepts.add(concept)
    add_reference_image(concept, "ref.png", check_image_bytes(factories.png_bytes((90, 60, 30))))
    made = launch_sweep(sweep)
    workers.start()
    wait_until(lambda: finished(*made), workers)
    assert_exactly_once(made, media_root)
    assert len(stored_files(media_root)) == 2 * 2 * 2
    assert sorted(run.method.params["w_s"] for run in made) == [2.0, 5.0]
    # each finished run queues its metrics on the cpu queue, which the same worker consumes
    scored = lambda: MetricScore.objects.filter(image__run__in=made, metric="clip_ts").count() == 8  # noqa: E731
    wait_until(scored, workers, what="the metrics of the finished runs")


def test_a_killed_worker_is_replaced_and_the_run_completes_exactly_once(workers, media_root):
    run = small_run(templates=("a {concept} in the snow", "a {concept} on the beach"), seeds=(0, 1, 2))
    first = workers.start(hold="after-first-image")  # it stops inside its batch, one image stored
    wait_until(lambda: half_done_batch(run), workers, what="a batch with some of its images")
    workers.kill(first)
    run.refresh_from_db()
    assert run.state == "running" and run.images.count() == 1 < run.images_total
    # The reconciler finds the batch whose heartbeat went silent and sends it again.
    wait_until(lambda: silent_for(run, seconds=1), workers, what="the killed worker's lease to lapse")
    report = reconcile(lease=1, resend_after=3600)
    assert report.requeued, f"{report}, batches: {list(run.batches.values('state', 'heartbeat', 'attempts'))}"
    workers.start()
    wait_until(lambda: finished(run), workers)
    assert_exactly_once([run], media_root)
    assert GenerationBatch.objects.filter(run=run, attempts__gte=2).exists()


def test_a_failing_run_is_marked_failed_while_other_runs_complete(workers, media_root, tmp_path):
    missing = tmp_path / "missing-model"
    bad = small_run(base_model=str(missing))
    good = small_run(seeds=(0, 1, 2))
    workers.start()
    wait_until(lambda: finished(bad, good), workers)
    bad.refresh_from_db()
    assert bad.state == "failed" and str(missing) in bad.error and bad.images.count() == 0
    assert_exactly_once([good], media_root)


def test_two_workers_on_one_run_with_duplicated_messages_store_each_image_once(workers, media_root):
    # Each worker holds its first batch until the other holds one too, so both take part by design.
    workers.start_ready(2, hold="until-another-worker")
    templates = ("a {concept} in the snow", "a {concept} on the beach")
    run = small_run(concepts=2, templates=templates, seeds=(0, 1))
    send_batches(list(run.batches.values_list("pk", flat=True)))  # every task twice
    wait_until(lambda: finished(run), workers)
    assert_exactly_once([run], media_root)
    hosts = set(run.batches.values_list("worker", flat=True))
    assert len(hosts) == 2, f"expected both workers to take batches, got {hosts}"


def unpacked_and_packed(workers, media_root, tmp_path, **run_fields) -> tuple[dict, dict]:
    """The same Mixed run made by an unpacked worker, then by one with GENERATION_PACK_IMAGES=4: the runs,
    and the rows of every UNet call each worker made."""
    calls = {"unpacked": tmp_path / "unpacked.calls", "packed": tmp_path / "packed.calls"}
    runs = {}
    for name, pack in (("unpacked", "0"), ("packed", "4")):
        run = runs[name] = small_run(sampler="mixed", **run_fields)
        worker = workers.start(
            GENERATION_PACK_IMAGES=pack, WORKER_DENOISER_CALLS=str(calls[name]), SCORE_FINISHED_RUNS="0"
        )
        wait_until(lambda run=run: finished(run), workers)
        workers.stop(worker)
    assert_exactly_once(list(runs.values()), media_root)
    return runs, {name: [int(line) for line in path.read_text().split()] for name, path in calls.items()}


def test_a_packed_batch_stores_the_unpacked_images_in_fewer_denoiser_calls(workers, media_root, tmp_path):
    """GENERATION_PACK_IMAGES=4: a batch's four seeds share each step's UNet call, and every image is the one
    the unpacked worker (one seed per call here) stores, still one row per seed."""
    seeds = (0, 1, 2, 3)
    runs, rows = unpacked_and_packed(workers, media_root, tmp_path, seeds=seeds)
    assert rows["unpacked"] == [3] * FAST_STEPS * len(seeds)  # Mixed: 3 branches, one seed per call
    assert rows["packed"] == [3 * len(seeds)] * FAST_STEPS  # all four seeds in each step's one call
    images = {name: {image.seed_index: image for image in run.images.all()} for name, run in runs.items()}
    for index in seeds:
        unpacked, packed = images["unpacked"][index], images["packed"][index]
        assert (packed.seed, packed.unet_evaluations) == (unpacked.seed, unpacked.unet_evaluations)
        assert np.abs(pixels(packed) - pixels(unpacked)).max() <= 2
    assert np.abs(pixels(images["packed"][0]) - pixels(images["packed"][1])).max() > 2  # seeds differ


def test_a_packing_worker_generates_a_concepts_prompts_in_shared_denoiser_calls(workers, media_root, tmp_path):
    """GENERATION_PACK_IMAGES=4 and two prompts of two seeds: the worker claims the second prompt's batch with
    the first, and all four images share each step's UNet call; each batch is done, its images its own."""
    templates, seeds = ("a {concept} in the snow", "a {concept} on the beach"), (0, 1)
    runs, rows = unpacked_and_packed(workers, media_root, tmp_path, templates=templates, seeds=seeds)
    assert rows["unpacked"] == [3] * FAST_STEPS * len(templates) * len(seeds)  # one seed of one prompt per call
    assert rows["packed"] == [3 * len(seeds) * len(templates)] * FAST_STEPS  # both prompts in one call
    packed = runs["packed"]
    assert sorted(packed.batches.values_list("state", flat=True)) == ["done", "done"]
    assert (
        len(set(packed.batches.values_list("worker", flat=True))) == 1
        and packed.batches.get(prompt__template=templates[1]).attempts == 1
    )
    assert "packed with batches" in (workers.log_dir / "worker2.log").read_text()
    images = {
        name: {(image.prompt.template, image.seed_index): image for image in run.images.select_related("prompt")}
        for name, run in runs.items()
    }
    assert images["packed"].keys() == images["unpacked"].keys() and len(images["packed"]) == 4
    for slot, unpacked in images["unpacked"].items():
        packed_image = images["packed"][slot]
        assert (packed_image.seed, packed_image.unet_evaluations) == (unpacked.seed, unpacked.unet_evaluations)
        assert np.abs(pixels(packed_image) - pixels(unpacked)).max() <= 2, slot


def pixels(image: GeneratedImage):
    from PIL import Image

    with Image.open(image.file.path) as opened:
        return np.asarray(opened.convert("RGB"), dtype=np.int16)
