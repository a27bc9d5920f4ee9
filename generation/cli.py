"""``python -m generation``: sample, sweep, samplers, make-tiny, fine-tune (plus metrics, pareto and world)."""

from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from generation.backbones import BACKBONE_NAMES
from generation.errors import GenerationError, ModelLoadError, ParameterError


def parse_param(text: str) -> tuple[str, Any]:
    """``w_s=3.5`` -> ("w_s", 3.5); values are JSON literals (numbers, true/false)."""
    name, sep, raw = text.partition("=")
    if not sep or not name.strip():
        raise ParameterError(f"--param: expected NAME=VALUE, got {text!r}")
    return name.strip(), _parse_value(name.strip(), raw.strip())


def _parse_value(name: str, raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        raise ParameterError(f"--param {name}: expected a number, true or false, got {raw!r}") from None


def parse_grid(texts: Sequence[str]) -> list[dict[str, Any]]:
    """``["w_s=0,1,2", "t_sw=5,10"]`` -> the cartesian product as parameter dicts."""
    axes = []
    for text in texts:
        name, sep, raw = text.partition("=")
        if not sep or not raw.strip():
            raise ParameterError(f"--grid: expected NAME=V1,V2,..., got {text!r}")
        axes.append([(name.strip(), _parse_value(name.strip(), value.strip())) for value in raw.split(",")])
    return [dict(combination) for combination in itertools.product(*axes)]


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="hub id or local diffusers folder")
    parser.add_argument("--personalization", help="fine-tuned weights (folder or file) applied on top")
    parser.add_argument("--concept-token", required=True, help="placeholder token, e.g. sks or <dog>")
    parser.add_argument("--superclass", required=True, help="superclass word(s), e.g. dog or 'stuffed animal'")
    parser.add_argument("--prompt", required=True, help='template with {concept}, e.g. "a {concept} in the snow"')
    parser.add_argument("--seeds", default="0-9", help="seed indices: 0-9, 3 or 0,2,5-7 (default 0-9)")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", help="float32, float16 or bfloat16 (default: float32 on CPU, float16 on GPU)")
    parser.add_argument(
        "--backbone",
        choices=tuple(BACKBONE_NAMES),
        help="expected backbone; the model's own (from model_index.json) is used, and a different one is an error",
    )
    speed = parser.add_argument_group("GPU speed paths (all off by default)")
    speed.add_argument("--compile", action="store_true", help="torch.compile the denoiser")
    speed.add_argument("--compile-cache-dir", help="keep compiled kernels here across runs (with --compile)")
    speed.add_argument("--cuda-graphs", action="store_true", help="replay small denoiser calls from CUDA graphs")
    speed.add_argument(
        "--memory-budget-gib", type=float, help="GPU memory one denoiser call may use; sets images per call"
    )
    parser.add_argument("--save-masks", action="store_true", help="also write Masked's attention mask")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m generation", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)

    sample = subparsers.add_parser("sample", help="generate images with one sampler")
    _add_model_arguments(sample)
    sample.add_argument("--sampler", required=True, help="one of: " + ", ".join(_sampler_names()))
    sample.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="sampler parameter")
    sample.set_defaults(handler=run_sample)

    sweep = subparsers.add_parser("sweep", help="generate over a grid of sampler parameters")
    _add_model_arguments(sweep)
    sweep.add_argument("--sampler", required=True)
    sweep.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="NAME=V1,V2",
        help="axis of the grid (repeatable); default: the sampler's preset grid",
    )
    sweep.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="fixed parameter applied to every grid point"
    )
    sweep.set_defaults(handler=run_sweep)

    samplers = subparsers.add_parser("samplers", help="list samplers, parameters, defaults and cost")
    samplers.add_argument("--json", action="store_true", help="machine-readable output")
    samplers.set_defaults(handler=run_samplers)

    make_tiny = subparsers.add_parser("make-tiny", help="write the offline tiny models (a pipeline, CLIP, DINO)")
    make_tiny.add_argument("directory", type=Path)
    make_tiny.add_argument(
        "--backbone", choices=tuple(BACKBONE_NAMES), default="sd", help="which pipeline to build (default sd)"
    )
    make_tiny.set_defaults(handler=run_make_tiny)

    from generation.training import cli as training_cli

    training_cli.register(subparsers)

    from generation.metrics import cli as metrics_cli

    metrics_cli.register(subparsers)

    from generation.world import cli as world_cli

    world_cli.register(subparsers)
    return parser


def _sampler_names() -> tuple[str, ...]:
    from generation.samplers import SAMPLER_NAMES

    return SAMPLER_NAMES


class ProgressBar:
    """A one-line text progress bar on stderr."""

    def __init__(self, label: str, enabled: bool = True, width: int = 30):
        self.label, self.enabled, self.width = label, enabled, width

    def __call__(self, images_done: int, images_total: int, step: int, steps: int) -> None:
        if not self.enabled:
            return
        fraction = (images_done + (step / steps if images_done < images_total else 0)) / max(images_total, 1)
        filled = int(fraction * self.width)
        bar = "#" * filled + "." * (self.width - filled)
        line = f"\r{self.label} [{bar}] {images_done}/{images_total} images, step {step}/{steps}"
        sys.stderr.write(line)
        if images_done >= images_total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def check_backbone(model: str, expected: str | None) -> None:
    """Refuse a model whose backbone is not the one ``--backbone`` names."""
    if expected is None:
        return
    from generation.pipelines import identify_backbone

    found = identify_backbone(model)
    if found != expected:
        raise ModelLoadError(
            f"--backbone {expected}: expected a {BACKBONE_NAMES[expected]} pipeline, "
            f"but {model} is a {BACKBONE_NAMES[found]} pipeline ({found})"
        )


def _request(args: argparse.Namespace, params: dict):
    from generation.api import GenerationRequest
    from generation.seeds import parse_seed_indices
    from generation.speed import SpeedOptions

    check_backbone(args.model, args.backbone)

    return GenerationRequest(
        model=args.model,
        personalization=args.personalization,
        concept_token=args.concept_token,
        superclass=args.superclass,
        prompt_template=args.prompt,
        sampler=args.sampler,
        params=params,
        seed_indices=parse_seed_indices(args.seeds),
        steps=args.steps,
        device=args.device,
        dtype=args.dtype,
        batch_size=args.batch_size,
        save_masks=args.save_masks,
        speed=SpeedOptions(
            compile=args.compile,
            compile_cache_dir=args.compile_cache_dir,
            cuda_graphs=args.cuda_graphs,
            memory_budget_gib=args.memory_budget_gib,
        ),
    )


def _generate_into(request, out_dir: Path, label: str, quiet: bool) -> list[Path]:
    from generation.api import generate, save_sample
    from generation.pipelines import quiet_loading

    quiet_loading()  # our own progress bar replaces the libraries' loading bars
    samples = generate(request, progress=ProgressBar(label, enabled=not quiet))
    return [save_sample(sample, out_dir) for sample in samples]


def run_sample(args: argparse.Namespace) -> int:
    params = dict(parse_param(text) for text in args.param)
    request = _request(args, params)
    paths = _generate_into(request, args.out, args.sampler, args.quiet)
    print(f"wrote {len(paths)} images to {args.out}")
    return 0


def params_slug(params: dict) -> str:
    """A folder name for one grid point, e.g. ``w_c7_w_s0``."""
    parts = [
        f"{key}{value:g}" if isinstance(value, float) else f"{key}{value}" for key, value in sorted(params.items())
    ]
    return re.sub(r"[^A-Za-z0-9_.-]", "", "_".join(parts)) or "defaults"


def run_sweep(args: argparse.Namespace) -> int:
    from generation.samplers import SWEEP_PRESETS, validate_params

    fixed = dict(parse_param(text) for text in args.param)
    grid = parse_grid(args.grid) if args.grid else SWEEP_PRESETS.get(args.sampler)
    if grid is None:
        validate_params(args.sampler, {})  # names the valid samplers
    points = [{**fixed, **point} for point in grid]
    for point in points:
        validate_params(args.sampler, point)  # fail before any image is made
    for number, point in enumerate(points, start=1):
        out_dir = args.out / args.sampler / params_slug(point)
        label = f"{args.sampler} {number}/{len(points)} {params_slug(point)}"
        _generate_into(_request(args, point), out_dir, label, args.quiet)
    print(f"wrote {len(points)} grid points under {args.out / args.sampler}")
    return 0


def run_samplers(args: argparse.Namespace) -> int:
    from generation.samplers import describe

    rows = describe()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        print(f"{row['name']}: {row['summary']}")
        print(f"  equation: {row['equation']}")
        print(f"  UNet evaluations per image: {row['cost']}")
        for param in row["parameters"]:
            bounds = "" if param["minimum"] is None else f" [{param['minimum']:g}, {param['maximum']:g}]"
            print(f"  {param['name']} = {param['default']!s:<6} ({param['type']}{bounds}) {param['description']}")
        print()
    return 0


def run_make_tiny(args: argparse.Namespace) -> int:
    from generation.tiny import ensure_tiny_model, ensure_tiny_pixart, ensure_tiny_sdxl, save_tiny_clip, save_tiny_dino

    builders = {"sd": ensure_tiny_model, "sdxl": ensure_tiny_sdxl, "pixart_alpha": ensure_tiny_pixart}
    directory: Path = args.directory
    pipeline = builders[args.backbone](directory)  # the pipeline at the top, as GENERATION_MODEL expects
    clip = save_tiny_clip(directory)  # writes directory/clip
    dino = save_tiny_dino(directory)  # writes directory/dino
    print(f"tiny {BACKBONE_NAMES[args.backbone]} pipeline: {pipeline}\ntiny CLIP: {clip}\ntiny DINO: {dino}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except GenerationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
