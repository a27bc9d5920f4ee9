"""Packing several prompts of one concept into shared denoiser calls: seconds per image, one prompt per call
against all prompts in one call, per backbone, on the offline tiny pipelines (CPU) or on CUDA.

A second table is the run worker's case: one batch (one prompt) of ``--batch-seeds`` seeds, in calls of
``--unpacked-per-call`` images (GENERATION_IMAGES_PER_CALL, the worker's default 4) against all of them in
one call (GENERATION_PACK_IMAGES = the seed count).

    python bench/packing.py                          # CPU, tiny SD-2, SD-XL and PixArt-alpha
    python bench/packing.py --device cuda --dtype float16
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TEMPLATES = ("a {concept} in the snow", "a red {concept}", "a {concept} on the beach", "a shiny {concept}")


def requests(model, args, per_call):
    from generation.api import GenerationRequest

    return [
        GenerationRequest(
            model=str(model),
            concept_token="sks",
            superclass="dog",
            prompt_template=template,
            sampler=args.sampler,
            params={},
            seed_indices=list(range(args.seeds)),
            steps=args.steps,
            device=args.device,
            dtype=args.dtype,
            batch_size=per_call,
        )
        for template in TEMPLATES
    ]


def seconds_per_image(model, args, per_call: int, packed: bool) -> float:
    from generation.api import generate, generate_many

    batch = requests(model, args, per_call)
    began = time.perf_counter()
    if packed:
        generate_many(batch)
    else:
        for request in batch:
            generate(request)
    return (time.perf_counter() - began) / (len(TEMPLATES) * args.seeds)


def batch_seconds_per_image(model, args, per_call: int) -> float:
    from generation.api import generate

    request = requests(model, args, per_call)[0]
    request.seed_indices = list(range(args.batch_seeds))
    began = time.perf_counter()
    generate(request)
    return (time.perf_counter() - began) / args.batch_seeds


def main() -> int:
    from generation.tiny import ensure_tiny_model, ensure_tiny_pixart, ensure_tiny_sdxl

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype")
    parser.add_argument("--sampler", default="mixed")
    parser.add_argument("--seeds", type=int, default=2, help="seeds per prompt")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--backbones", default="sd,sdxl,pixart_alpha", help="comma-separated, of sd, sdxl, pixart_alpha"
    )
    parser.add_argument("--batch-seeds", type=int, default=8, help="seeds of the one-batch table")
    parser.add_argument("--unpacked-per-call", type=int, default=4, help="images per call, unpacked worker")
    args = parser.parse_args()
    root = Path(tempfile.gettempdir()) / "generation-bench-backbones"
    builders = {
        "sd": lambda: ensure_tiny_model(root / "sd"),
        "sdxl": lambda: ensure_tiny_sdxl(root / "sdxl"),
        "pixart_alpha": lambda: ensure_tiny_pixart(root / "pixart"),
    }
    names = args.backbones.split(",")
    if unknown := [name for name in names if name not in builders]:
        parser.error(f"--backbones: expected names from {', '.join(builders)}, got {', '.join(unknown)}")
    models = {name: builders[name]() for name in names}
    everything = len(TEMPLATES) * args.seeds
    print(f"{args.sampler}, {len(TEMPLATES)} prompts x {args.seeds} seeds, {args.steps} steps, {args.device}")
    print("| backbone | one prompt per call (s/image) | all prompts in one call (s/image) | speed-up |")
    print("|---|---|---|---|")
    for name, model in models.items():
        seconds_per_image(model, args, args.seeds, packed=False)  # load and warm up
        alone = min(seconds_per_image(model, args, args.seeds, packed=False) for _ in range(args.repeats))
        packed = min(seconds_per_image(model, args, everything, packed=True) for _ in range(args.repeats))
        print(f"| {name} | {alone:.4f} | {packed:.4f} | {alone / packed:.2f}x |")
    print(f"\none batch: 1 prompt x {args.batch_seeds} seeds")
    print(f"| backbone | {args.unpacked_per_call} per call (s/image) | all in one call (s/image) | speed-up |")
    print("|---|---|---|---|")
    for name, model in models.items():
        alone = min(batch_seconds_per_image(model, args, args.unpacked_per_call) for _ in range(args.repeats))
        packed = min(batch_seconds_per_image(model, args, args.batch_seeds) for _ in range(args.repeats))
        print(f"| {name} | {alone:.4f} | {packed:.4f} | {alone / packed:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
