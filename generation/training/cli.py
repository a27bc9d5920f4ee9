"""``python -m generation fine-tune BASE PHOTOS_DIR OUTPUT --method lora ...``: progress lines, Ctrl-C resumes."""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
from pathlib import Path

from generation.training.settings import DEFAULT_LEARNING_RATES, LORA_TARGETS, METHODS


def register(subparsers) -> None:
    """Add the ``fine-tune`` subcommand to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "fine-tune",
        help="fine-tune a Stable Diffusion 1.x/2.x model on photos of a subject (DreamBooth, LoRA, TI)",
        description="Checkpoints go to --work-dir (default OUTPUT.work); running the same command again resumes "
        "from the newest one. Ctrl-C stops after the current step and writes a checkpoint first.",
    )
    parser.add_argument("base", help="hub id or local diffusers folder of the base model")
    parser.add_argument("photos", type=Path, help="folder of the subject's photos (3 or more)")
    parser.add_argument("output", type=Path, help="new folder for the result")
    parser.add_argument("--method", required=True, choices=METHODS)
    parser.add_argument("--instance-prompt", required=True, help="e.g. 'a photo of sks dog' ('<sks>' for TI)")
    parser.add_argument("--class-prompt", required=True, help="e.g. 'a photo of dog'")
    parser.add_argument("--steps", type=int)
    rates = ", ".join(f"{name} {rate:g}" for name, rate in DEFAULT_LEARNING_RATES.items())
    parser.add_argument("--learning-rate", type=float, help=f"default per method: {rates}")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--resolution", type=int, help="default: the base model's native size")
    parser.add_argument("--lora-rank", type=int)
    parser.add_argument("--lora-targets", choices=LORA_TARGETS, help="default: attention")
    parser.add_argument("--train-text-encoder", action="store_true", default=None, help="dreambooth only")
    parser.add_argument("--prior-preservation", action="store_true", default=None)
    parser.add_argument("--prior-loss-weight", type=float)
    parser.add_argument("--class-images", type=int)
    parser.add_argument("--checkpoint-every", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--work-dir", type=Path, help="checkpoints and class images (default: OUTPUT.work)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--log-every", type=int, help="print a progress line every N steps (default: steps / 20)")
    parser.set_defaults(handler=run_fine_tune)


SETTING_ARGUMENTS = (
    "method",
    "steps",
    "learning_rate",
    "batch_size",
    "resolution",
    "lora_rank",
    "lora_targets",
    "train_text_encoder",
    "prior_preservation",
    "prior_loss_weight",
    "class_images",
    "checkpoint_every",
    "seed",
)


def run_fine_tune(args: argparse.Namespace) -> int:
    from generation.pipelines import quiet_loading
    from generation.training import FineTuneSettings, FineTuneStopped, fine_tune
    from generation.training.photos import photos_in

    settings = FineTuneSettings.from_dict(
        {name: getattr(args, name) for name in SETTING_ARGUMENTS if getattr(args, name) is not None}
    )
    photos = photos_in(args.photos)
    work_dir = args.work_dir or args.output.with_name(args.output.name + ".work")
    every = args.log_every or max(1, settings.steps // 20)
    stop = _StopOnInterrupt()
    quiet_loading()

    def report(progress) -> None:
        if progress.step % every == 0 or progress.step == progress.total:
            eta = "?" if progress.eta_seconds is None else _duration(progress.eta_seconds)
            print(
                f"step {progress.step}/{progress.total}  loss {progress.loss:.4f}  "
                f"{progress.steps_per_second:.2f} steps/s  eta {eta}",
                file=sys.stderr,
                flush=True,
            )

    try:
        with stop:
            result = fine_tune(
                args.base,
                photos,
                args.instance_prompt,
                args.class_prompt,
                settings,
                args.output,
                work_dir=work_dir,
                device=args.device,
                on_progress=report,
                should_stop=stop,
            )
    except FineTuneStopped as stopped:
        print(f"{stopped}; run the same command again to resume", file=sys.stderr)
        return 130
    if args.work_dir is None:
        shutil.rmtree(work_dir, ignore_errors=True)
    resumed = f", resumed from step {result.resumed_from}" if result.resumed_from is not None else ""
    print(
        f"wrote {result.format} weights to {result.output_dir} "
        f"({result.steps_done} steps{resumed}, {_duration(result.wall_seconds)})"
    )
    return 0


class _StopOnInterrupt:
    """``should_stop`` for the command line: the first Ctrl-C asks to stop after the current step."""

    def __init__(self):
        self.requested = False
        self.previous = None

    def __call__(self) -> bool:
        return self.requested

    def __enter__(self):
        self.previous = signal.signal(signal.SIGINT, self._request)
        return self

    def __exit__(self, *exc_info):
        signal.signal(signal.SIGINT, self.previous)

    def _request(self, signum, frame) -> None:
        if self.requested:  # a second Ctrl-C interrupts at once
            raise KeyboardInterrupt
        self.requested = True
        print("stopping after this step (Ctrl-C again to abort without a checkpoint)", file=sys.stderr, flush=True)


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes}m{seconds:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"
