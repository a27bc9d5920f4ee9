"""Fine-tunes on real worker processes, real Redis and Postgres: trained once, resumed, cancelled, failed.

Each test starts `celery -A studyapp worker` subprocesses (tests/runs/celery_workers.py) and fine-tunes the
shipped world model (generation/world/models) on a world subject's photos with LoRA on CPU for a few dozen
steps. Interleavings are made with the training-step
holds of tests/worker_hooks.py, never waited for with a sleep.
"""

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from generation.world.data import write_subject_photos
from generation.world.paths import PIPELINE
from studyapp.catalog.images import check_image_bytes
from studyapp.catalog.importers import add_reference_image
from studyapp.models import FineTuneRun
from studyapp.runs.actions import perform
from studyapp.runs.finetune import output_location, work_dir
from studyapp.runs.finetune_launch import FINE_TUNE_ACTIONS, create_fine_tune, send_fine_tunes
from studyapp.runs.finetune_methods import create_methods
from studyapp.runs.launch import create_run
from studyapp.runs.reconciler import reconcile
from tests import factories
from tests.runs.celery_workers import wait_until
from tests.runs.factories import FAST_STEPS
from tests.runs.test_workers import assert_exactly_once, finished

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services, pytest.mark.slow]

STEPS, EVERY = 30, 10
SETTINGS = {"steps": STEPS, "checkpoint_every": EVERY}


@pytest.fixture
def worker_generation_model(settings):
    settings.GENERATION_MODEL = str(PIPELINE)
    return PIPELINE


@pytest.fixture(scope="module")
def world_photos(tmp_path_factory):
    return write_subject_photos(tmp_path_factory.mktemp("world-photos")) / "sunny_ball"


def concept_with_photos(photos: Path):
    concept = factories.concept(superclass="ball")
    for path in sorted(photos.glob("*.jpg")):
        add_reference_image(concept, path.name, check_image_bytes(path.read_bytes()))
    return concept


def fine_tune_of(concept, **overrides):
    fields = {"concept": concept, "method": "lora", "hyperparameters": SETTINGS, "seed": 7}
    return create_fine_tune(**{**fields, **overrides})


def ended(*runs) -> bool:
    states = FineTuneRun.objects.filter(pk__in=[run.pk for run in runs]).values_list("state", flat=True)
    return all(state in ("done", "failed", "cancelled") for state in states)


def lora_weights(run: FineTuneRun) -> dict:
    from safetensors.torch import load_file

    return load_file(output_location(run) / "pytorch_lora_weights.safetensors")


def logged(workers, number: int, text: str):
    return lambda: text in (workers.log_dir / f"worker{number}.log").read_text(errors="replace")


def test_a_fine_tune_completes_and_its_methods_sample_on_the_worker(workers, media_root, world_photos):
    concept = concept_with_photos(world_photos)
    run = fine_tune_of(concept, label="rex")
    workers.start()
    wait_until(lambda: ended(run), workers, what="the fine-tune")
    run.refresh_from_db()
    assert run.state == "done", run.error
    assert (run.step, run.total_steps, run.attempts, run.resumed_from) == (STEPS, STEPS, 1, None)
    assert run.output_format == "lora" and run.loss is not None and run.steps_per_second > 0
    assert sorted(path.name for path in output_location(run).iterdir()) == [
        "manifest.json",
        "pytorch_lora_weights.safetensors",
    ]
    assert run.manifest["settings"]["steps"] == STEPS and run.manifest["settings"]["seed"] == 7
    assert not work_dir(run).exists()  # the checkpoints go once the result is in place
    made = create_methods(run, samplers=["base", "mixed"])
    sampled = create_run(
        method=made.created[1],
        prompt_set=factories.prompt_set(),
        concepts=[concept],
        seed_indices=[0],
        steps=FAST_STEPS,
    )
    wait_until(lambda: finished(sampled), workers, what="a run over the fine-tuned method")
    assert_exactly_once([sampled], media_root)


def test_a_killed_worker_is_resumed_from_its_last_checkpoint_and_matches_an_uninterrupted_run(workers, world_photos):
    killed_at = 25
    interrupted = fine_tune_of(concept_with_photos(world_photos))
    first = workers.start(hold=f"fine-tune-step-{killed_at}")  # it stops for good at step 25
    wait_until(logged(workers, 1, f"held at step {killed_at}"), workers, what="the worker to reach step 25")
    workers.kill(first)
    wait_until(lambda: silent_for(interrupted, seconds=1), workers, what="the killed worker's lease to lapse")
    report = reconcile(lease=1, resend_after=3600)
    assert report.fine_tunes_requeued == [interrupted.pk], report
    uninterrupted = fine_tune_of(interrupted.concept)
    workers.start()
    wait_until(lambda: ended(interrupted, uninterrupted), workers, what="both fine-tunes")
    interrupted.refresh_from_db()
    uninterrupted.refresh_from_db()
    assert interrupted.state == uninterrupted.state == "done", (interrupted.error, uninterrupted.error)
    assert interrupted.attempts == 2 and uninterrupted.resumed_from is None
    # Steps done before the kill are repeated for at most one checkpoint interval.
    assert killed_at - EVERY <= interrupted.resumed_from < killed_at
    resumed, straight = lora_weights(interrupted), lora_weights(uninterrupted)
    assert resumed.keys() == straight.keys()
    for name in straight:
        assert (resumed[name] - straight[name]).abs().max() <= 1e-5 * (1 + straight[name].abs().max()), name


def silent_for(run, seconds: float) -> bool:
    """The fine-tune is running and its heartbeat is older than `seconds`."""
    recent = timezone.now() - timedelta(seconds=seconds)
    return FineTuneRun.objects.filter(pk=run.pk, state="running", heartbeat__lt=recent).exists()


def test_cancel_stops_training_at_a_checkpoint_and_resume_finishes_it(workers, world_photos):
    run = fine_tune_of(concept_with_photos(world_photos))
    workers.start(hold="fine-tune-step-5-until-cancelled")
    wait_until(logged(workers, 1, "held at step 5"), workers, what="training to reach step 5")
    assert perform(FINE_TUNE_ACTIONS["cancel"], [run]).runs == 1
    wait_until(logged(workers, 1, "stopped at a checkpoint"), workers, what="the worker to stop")
    run.refresh_from_db()
    assert run.state == "cancelled" and not run.output_path and 5 <= run.step < STEPS
    stopped_at = run.step
    assert (work_dir(run) / f"checkpoint-{stopped_at}").is_dir()  # written on the way out
    assert perform(FINE_TUNE_ACTIONS["resume"], [run]).queued_batches == 1
    wait_until(lambda: ended(run), workers, what="the resumed fine-tune")
    run.refresh_from_db()
    assert run.state == "done" and run.resumed_from == stopped_at and run.step == STEPS


def test_bad_input_at_training_time_fails_the_run_with_the_message(workers, media_root, world_photos):
    broken = concept_with_photos(world_photos)
    damaged = broken.references.first()
    bad_photo = fine_tune_of(broken)
    (Path(media_root) / damaged.image.name).write_bytes(b"\x89PNG\r\n\x1a\n truncated")  # damaged after queueing
    bad_model = fine_tune_of(concept_with_photos(world_photos), base_model="nobody/no-such-model")
    workers.start()
    wait_until(lambda: ended(bad_photo, bad_model), workers, what="both fine-tunes to fail")
    bad_photo.refresh_from_db()
    bad_model.refresh_from_db()
    assert bad_photo.state == "failed" and Path(damaged.image.name).name in bad_photo.error, bad_photo.error
    assert bad_model.state == "failed" and "nobody/no-such-model" in bad_model.error, bad_model.error
    for run in (bad_photo, bad_model):
        assert not run.output_path and not (Path(media_root) / "fine-tunes" / str(run.pk) / "model").exists()


def test_a_duplicated_message_does_not_start_a_second_training(workers, tmp_path, world_photos):
    release = tmp_path / "release"
    workers.env["WORKER_RELEASE"] = str(release)
    run = fine_tune_of(concept_with_photos(world_photos))
    first = workers.start(hold="fine-tune-step-3-until-released")  # it trains, and holds at step 3
    wait_until(lambda: FineTuneRun.objects.filter(pk=run.pk, step__gte=1).exists(), workers, what="training")
    workers.start_ready(1)
    send_fine_tunes([run.pk])  # the same task again, to the idle worker 2
    wait_until(logged(workers, 2, f"fine-tune {run.pk} is done, cancelled or held by another worker"), workers)
    release.touch()
    wait_until(lambda: ended(run), workers, what="the fine-tune")
    run.refresh_from_db()
    assert run.state == "done" and run.attempts == 1 and run.resumed_from is None
    assert run.worker.endswith(f":{first.pid}")  # the first worker trained it, and only it
