"""Deterministic interleavings for the worker tests, loaded with `celery worker --include tests.worker_hooks`.

A race between processes is made to happen on purpose, never waited for with a sleep. The hooks act on
Django's own `post_save` of a stored image, once it is committed, and only when the test asks for them
through an environment variable of the worker it starts:

- WORKER_HOLD=after-first-image: the worker stops for good after storing its first image (the test then
  kills it); its heartbeat goes silent, as a crashed worker's does.
- WORKER_HOLD=until-another-worker: after storing its first image the worker keeps its lease alive and
  waits until a different worker holds a batch of the same run, so two workers provably share one run.

Fine-tunes are held the same way at a training step, through the job's `training_step` signal:

- WORKER_HOLD=fine-tune-step-N: the worker stops for good at step N of its fine-tune (the test kills it).
- WORKER_HOLD=fine-tune-step-N-until-cancelled: at step N it keeps its lease alive until the run is cancelled.
- WORKER_HOLD=fine-tune-step-N-until-released: at step N it keeps its lease alive until the file named by
  WORKER_RELEASE exists.

WORKER_DENOISER_CALLS=PATH makes the worker append one line per call of a UNet to PATH: the rows (images x
branches) of that call, counted at the model itself like the generation tests' ``unet_calls``.
"""

import logging
import os
import re
import time
from pathlib import Path

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver
from django.utils import timezone

from studyapp.models import FineTuneRun, GeneratedImage, GenerationBatch
from studyapp.runs.finetune_job import training_step
from studyapp.runs.leases import worker_name

log = logging.getLogger(__name__)

HOLD_TIMEOUT_SECONDS = 300  # a bound for a broken test, far above any load time
POLL_SECONDS = 0.05
_held = False


@receiver(post_save, sender=GeneratedImage, dispatch_uid="tests.worker_hooks")
def hold_after_first_image(sender, instance, created, **kwargs):
    global _held
    hold = os.environ.get("WORKER_HOLD", "")
    if not created or _held or not hold or hold.startswith("fine-tune-"):
        return
    _held = True
    if hold == "after-first-image":
        transaction.on_commit(stop_for_good)
    elif hold == "until-another-worker":
        transaction.on_commit(lambda: wait_for_another_worker(instance))
    else:
        raise ValueError(f"WORKER_HOLD: expected after-first-image or until-another-worker, got {hold!r}")


def count_denoiser_calls(path: str) -> None:
    import torch

    def record(module, args):
        if type(module).__name__ == "UNet2DConditionModel":
            with open(path, "a") as calls:
                calls.write(f"{args[0].shape[0]}\n")

    torch.nn.modules.module.register_module_forward_pre_hook(record)


if os.environ.get("WORKER_DENOISER_CALLS"):
    count_denoiser_calls(os.environ["WORKER_DENOISER_CALLS"])


def stop_for_good() -> None:
    while True:
        time.sleep(3600)


def wait_for_another_worker(image: GeneratedImage) -> None:
    me = worker_name()
    mine = GenerationBatch.objects.filter(run=image.run_id, concept=image.concept_id, prompt=image.prompt_id)
    others = GenerationBatch.objects.filter(run=image.run_id).exclude(worker__in=("", me))
    deadline = time.monotonic() + HOLD_TIMEOUT_SECONDS
    while time.monotonic() < deadline and not others.exists():
        mine.filter(worker=me).update(heartbeat=timezone.now())  # held, not lost: keep the lease
        time.sleep(POLL_SECONDS)


FINE_TUNE_HOLD = re.compile(r"fine-tune-step-(\d+)(-until-cancelled|-until-released)?")


@receiver(training_step, dispatch_uid="tests.worker_hooks.fine_tune")
def hold_at_training_step(sender, run_id, step, worker, **kwargs):
    global _held
    hold = FINE_TUNE_HOLD.fullmatch(os.environ.get("WORKER_HOLD", ""))
    if _held or not hold or step < int(hold.group(1)):
        return
    _held = True
    log.info("held at step %s of fine-tune %s", step, run_id)
    if not hold.group(2):
        stop_for_good()
    held = FineTuneRun.objects.filter(pk=run_id, worker=worker, state=FineTuneRun.State.RUNNING)
    if hold.group(2) == "-until-cancelled":
        released = lambda: not held.exists()  # noqa: E731
    else:
        released = Path(os.environ["WORKER_RELEASE"]).exists
    deadline = time.monotonic() + HOLD_TIMEOUT_SECONDS
    while time.monotonic() < deadline and not released():
        held.update(heartbeat=timezone.now())  # held, not lost: keep the lease
        time.sleep(POLL_SECONDS)
