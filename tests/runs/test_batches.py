"""The task body as a plain function: leases, skipping finished images, failures, cancel, resume, reconcile.

Tests here never commit, so no task message leaves; the worker tests (test_workers.py) run real workers.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from studyapp.models import GeneratedImage, GenerationBatch, GenerationRun
from studyapp.runs.actions import cancel_run, requeue_failed, resume_run
from studyapp.runs.leases import Heartbeat, LeaseLost, claim_batch, claim_companions, release_batches
from studyapp.runs.progress import run_progress
from studyapp.runs.reconciler import reconcile
from studyapp.runs.state import finish_batch, refresh_run
from studyapp.runs.storage import store_sample, write_file_once
from studyapp.runs.worker import generate_batch, generate_missing, run_batch
from tests.runs.factories import expected_slots, rows_match_files, slots, small_run, stored_files

pytestmark = pytest.mark.django_db

Batch = GenerationBatch.State


def run_all(run):
    for batch in run.batches.all():
        run_batch(batch.pk)
    run.refresh_from_db()


def test_running_every_batch_stores_each_slot_once_and_finishes_the_run(tiny_model, media_root):
    run = small_run(concepts=2, templates=("a {concept} in the snow", "a {concept} on the beach"), seeds=(0, 3))
    assert run.batches.count() == 4 and run.images_total == 8
    run_all(run)
    assert run.state == GenerationRun.State.DONE and run.error == ""
    assert slots(run) == expected_slots(run)
    assert rows_match_files(run.images.all(), media_root)
    image = run.images.get(seed_index=3, prompt__position=1, concept=run.concepts.first())
    assert image.seed is not None and image.params == run.params and (image.width, image.height) == (64, 64)
    assert set(run.batches.values_list("attempts", flat=True)) == {1}


def test_a_duplicated_task_skips_the_finished_batch(tiny_model, media_root):
    run = small_run()
    batch = run.batches.get()
    run_batch(batch.pk)
    assert run_batch(batch.pk) is None
    assert run.images.count() == 2 and len(stored_files(media_root)) == 2


def test_a_retried_batch_generates_only_the_missing_images(tiny_model, media_root):
    run = small_run(seeds=(0, 1, 2))
    batch = run.batches.get()
    first = generate_batch(run.pk, batch.concept_id, batch.prompt_id, [1])
    assert first.created == 1
    kept = run.images.get().token
    result = run_batch(batch.pk)
    assert (result.created, result.skipped) == (2, 1)
    assert run.images.get(seed_index=1).token == kept
    assert rows_match_files(run.images.all(), media_root)


def test_a_live_lease_keeps_a_second_worker_out_until_the_heartbeat_is_stale(tiny_model):
    run = small_run()
    batch = run.batches.get()
    assert claim_batch(batch.pk, "worker-a", lease_seconds=60)
    assert not claim_batch(batch.pk, "worker-b", lease_seconds=60)
    assert run_batch(batch.pk, worker="worker-b") is None and run.images.count() == 0
    GenerationBatch.objects.filter(pk=batch.pk).update(heartbeat=timezone.now() - timedelta(seconds=120))
    assert claim_batch(batch.pk, "worker-b", lease_seconds=60)
    batch.refresh_from_db()
    assert (batch.worker, batch.attempts) == ("worker-b", 2)


def test_a_failing_batch_marks_the_run_failed_with_the_message(tiny_model, tmp_path):
    missing = tmp_path / "no-such-model"
    run = small_run(base_model=str(missing))
    run_all(run)
    batch = run.batches.get()
    assert batch.state == Batch.FAILED and str(missing) in batch.error
    assert run.state == GenerationRun.State.FAILED and str(missing) in run.error
    assert run.images.count() == 0


def test_requeue_failed_resends_only_the_failed_batches(tiny_model, django_capture_on_commit_callbacks):
    run = small_run(templates=("a {concept} in the snow", "a {concept} on the beach"))
    done, failing = run.batches.all()
    run_batch(done.pk)
    GenerationBatch.objects.filter(pk=failing.pk).update(state=Batch.FAILED, error="boom", attempts=1)
    refresh_run(run.pk)
    with django_capture_on_commit_callbacks() as sent:
        assert requeue_failed(run) == 1
    assert len(sent) == 1
    failing.refresh_from_db()
    done.refresh_from_db()
    assert (failing.state, failing.attempts, done.state) == (Batch.QUEUED, 0, Batch.DONE)
    run_batch(failing.pk)
    run.refresh_from_db()
    assert run.state == GenerationRun.State.DONE and slots(run) == expected_slots(run)


def test_cancel_skips_queued_batches_and_resume_finishes_the_rest(tiny_model):
    run = small_run(templates=("a {concept} in the snow", "a {concept} on the beach"))
    first, second = run.batches.all()
    run_batch(first.pk)
    cancel_run(run)
    assert run_batch(second.pk) is None
    run.refresh_from_db()
    assert run.state == GenerationRun.State.CANCELLED and run.images.count() == 2
    assert resume_run(run) == 1
    run_batch(second.pk)
    run.refresh_from_db()
    assert run.state == GenerationRun.State.DONE and slots(run) == expected_slots(run)


def test_a_cancelled_batch_stops_at_its_next_heartbeat(tiny_model):
    run = small_run()
    batch = run.batches.get()
    assert claim_batch(batch.pk, "worker-a", lease_seconds=60)
    heartbeat = Heartbeat(batch.pk, "worker-a", every=0)
    heartbeat(0, 2, 1, 2)
    cancel_run(run)
    with pytest.raises(LeaseLost, match="cancelled"):
        heartbeat(0, 2, 2, 2)
    assert not finish_batch(batch.pk, "worker-a", Batch.DONE)
    batch.refresh_from_db()
    assert batch.state == Batch.CANCELLED


def test_a_packed_batch_renews_its_lease_at_every_step_of_its_one_call(settings, tiny_model, media_root):
    settings.GENERATION_PACK_IMAGES = 4
    run = small_run(seeds=(0, 1, 2))
    batch = run.batches.get()
    assert claim_batch(batch.pk, "worker-a", lease_seconds=60)
    claimed = GenerationBatch.objects.get(pk=batch.pk).heartbeat
    heartbeat, reported = Heartbeat(batch.pk, "worker-a", every=0), []

    def on_step(*progress):
        reported.append(progress)
        heartbeat(*progress)

    result = generate_missing(run, batch.concept, batch.prompt, batch.seed_indices, on_step=on_step)
    assert reported == [(0, 3, 1, 2), (0, 3, 2, 2), (3, 3, 2, 2)]  # (done, total, step, steps): one call of three
    assert result.created == 3 and sorted(run.images.values_list("seed_index", flat=True)) == [0, 1, 2]
    assert GenerationBatch.objects.get(pk=batch.pk).heartbeat > claimed


def test_a_packed_batch_cancelled_during_its_call_stores_nothing(settings, tiny_model):
    settings.GENERATION_PACK_IMAGES = 4
    run = small_run(seeds=(0, 1, 2))
    batch = run.batches.get()
    assert claim_batch(batch.pk, "worker-a", lease_seconds=60)
    heartbeat = Heartbeat(batch.pk, "worker-a", every=0)

    def cancel_after_the_first_step(*progress):
        cancel_run(run)
        heartbeat(*progress)

    with pytest.raises(LeaseLost, match="cancelled"):
        generate_missing(run, batch.concept, batch.prompt, batch.seed_indices, on_step=cancel_after_the_first_step)
    assert run.images.count() == 0


def test_a_packing_worker_claims_the_concepts_other_prompts_and_gives_back_what_it_still_holds(tiny_model):
    templates = ("a {concept} in the snow", "a {concept} on the beach", "a {concept} at night")
    run = small_run(templates=templates, seeds=(0, 1))
    first, second, third = run.batches.order_by("pk")
    assert claim_batch(first.pk, "worker-a", lease_seconds=60)
    assert claim_companions(first, "worker-a", images=4) == [second]  # 2 + 2 seeds fill the call
    assert claim_companions(third, "worker-b", images=4) == []  # the others are held
    assert GenerationBatch.objects.get(pk=third.pk).state == Batch.QUEUED
    heartbeat = Heartbeat([first.pk, second.pk], "worker-a", every=0)
    heartbeat()
    GenerationBatch.objects.filter(pk=second.pk).update(state=Batch.CANCELLED)
    with pytest.raises(LeaseLost, match=f"batch {second.pk}: cancelled"):
        heartbeat()
    assert release_batches([first.pk, second.pk], "worker-a") == [first.pk]
    first.refresh_from_db()
    assert (first.state, first.worker, first.attempts) == (Batch.QUEUED, "", 0)
    assert GenerationBatch.objects.get(pk=second.pk).state == Batch.CANCELLED


def test_a_packed_group_finishes_each_of_its_batches(settings, tiny_model, media_root):
    settings.GENERATION_PACK_IMAGES = 4
    run = small_run(templates=("a {concept} in the snow", "a {concept} on the beach"), seeds=(0, 1))
    first, second = run.batches.order_by("pk")
    result = run_batch(first.pk, worker="worker-a")
    assert result.created == 4
    assert set(run.batches.values_list("state", "worker")) == {(Batch.DONE, "worker-a")}
    assert run_batch(second.pk, worker="worker-b") is None  # its own message finds it done
    run.refresh_from_db()
    assert run.state == GenerationRun.State.DONE and slots(run) == expected_slots(run)


def test_reconcile_requeues_a_batch_whose_worker_vanished(tiny_model, django_capture_on_commit_callbacks):
    run = small_run()
    batch = run.batches.get()
    claim_batch(batch.pk, "vanished", lease_seconds=60)
    GenerationBatch.objects.filter(pk=batch.pk).update(heartbeat=timezone.now() - timedelta(seconds=30))
    assert reconcile(lease=60, resend_after=3600).requeued == []
    with django_capture_on_commit_callbacks(execute=False) as sent:
        report = reconcile(lease=10, resend_after=3600)
    assert report.requeued == [batch.pk] and len(sent) == 1
    run_batch(batch.pk)
    run.refresh_from_db()
    assert run.state == GenerationRun.State.DONE and run.images.count() == 2


def test_reconcile_gives_up_on_a_batch_that_keeps_losing_its_worker(tiny_model, settings):
    settings.GENERATION_MAX_ATTEMPTS = 2
    run = small_run()
    batch = run.batches.get()
    GenerationBatch.objects.filter(pk=batch.pk).update(
        state=Batch.RUNNING, worker="w", attempts=2, heartbeat=timezone.now() - timedelta(hours=1)
    )
    assert not claim_batch(batch.pk, "other", lease_seconds=60)
    report = reconcile(lease=60, resend_after=3600)
    assert report.failed == [batch.pk]
    run.refresh_from_db()
    assert run.state == GenerationRun.State.FAILED and "gave up after 2 attempts" in run.error


def test_reconcile_resends_a_queued_batch_whose_message_was_lost(tiny_model, django_capture_on_commit_callbacks):
    run = small_run()
    batch = run.batches.get()
    GenerationBatch.objects.filter(pk=batch.pk).update(queued=timezone.now() - timedelta(hours=7))
    with django_capture_on_commit_callbacks() as sent:
        assert reconcile(lease=60, resend_after=6 * 3600).resent == [batch.pk]
    assert len(sent) == 1


def test_progress_reports_done_total_rate_and_state(tiny_model):
    run = small_run(seeds=(0, 1, 2, 3))
    before = run_progress(run)
    assert (before.done, before.total, before.state, before.images_per_second) == (0, 4, "queued", None)
    run_all(run)
    after = run_progress(run).as_dict()
    assert (after["done"], after["total"], after["percent"], after["state"]) == (4, 4, 100.0, "done")
    assert after["images_per_second"] > 0 and after["eta_seconds"] is None
    assert after["batches"] == {"done": 1}


def test_a_second_store_of_the_same_slot_keeps_the_first_row_and_its_file(tiny_model, media_root):
    run = small_run(seeds=(0,))
    run_all(run)
    image = run.images.get()
    from PIL import Image

    from generation.api import GeneratedSample

    with image.file.open("rb") as handle:
        picture = Image.open(handle).convert("RGB")
        picture.load()
    duplicate = GeneratedSample(
        seed_index=0,
        seed=image.seed,
        image=picture,
        prompt="",
        superclass_prompt="",
        sampler="base",
        params={},
        unet_evaluations=1,
        wall_time=0.1,
        steps=2,
        model="",
        personalization=None,
    )
    assert store_sample(run, image.concept, image.prompt, duplicate) is False
    assert GeneratedImage.objects.count() == 1 and rows_match_files(run.images.all(), media_root)


def test_files_are_written_under_a_temporary_name_then_moved(media_root):
    name = write_file_once("generated/ab/abc.png", b"png bytes")
    assert (media_root / name).read_bytes() == b"png bytes"
    assert write_file_once(name, b"other bytes") == name  # content-addressed: an existing file is the same image
    assert sorted(p.name for p in (media_root / "generated" / "ab").iterdir()) == ["abc.png"]


def test_the_reconcile_command_reports_what_it_requeued(tiny_model, django_capture_on_commit_callbacks):
    from io import StringIO

    from django.core.management import call_command

    run = small_run()
    batch = run.batches.get()
    claim_batch(batch.pk, "vanished", lease_seconds=60)
    GenerationBatch.objects.filter(pk=batch.pk).update(heartbeat=timezone.now() - timedelta(minutes=30))
    out = StringIO()
    with django_capture_on_commit_callbacks():
        call_command("reconcile_runs", "--lease", "600", stdout=out)
    assert f"requeued: 1 batch(es) [{batch.pk}]" in out.getvalue()
    batch.refresh_from_db()
    assert batch.state == Batch.QUEUED


def test_requeueing_the_failed_batches_of_a_cancelled_run_ends_cancelled(tiny_model):
    run = small_run(templates=("a {concept} in the snow", "a {concept} on the beach"))
    failing, _other = run.batches.all()
    cancel_run(run)
    GenerationBatch.objects.filter(pk=failing.pk).update(state=Batch.FAILED, error="boom")
    assert requeue_failed(run) == 1
    run_batch(failing.pk)
    run.refresh_from_db()
    assert run.state == GenerationRun.State.CANCELLED and run.images.count() == 2


def test_a_worker_takes_no_speed_path_unless_its_settings_ask(settings, tiny_model):
    from generation.speed import SpeedOptions
    from studyapp.runs.worker import build_request

    run = small_run(concepts=1, templates=("a {concept} in the snow",), seeds=(0,))
    concept, prompt = run.concepts.get(), run.prompt_set.prompts.get()
    default = build_request(run, concept, prompt, [0])
    assert default.speed == SpeedOptions() and default.dtype is None
    settings.GENERATION_DTYPE, settings.GENERATION_COMPILE = "bfloat16", True
    settings.GENERATION_COMPILE_CACHE_DIR = "/var/cache/inductor"
    tuned = build_request(run, concept, prompt, [0])
    assert tuned.dtype == "bfloat16"
    assert tuned.speed == SpeedOptions(compile=True, compile_cache_dir="/var/cache/inductor")
