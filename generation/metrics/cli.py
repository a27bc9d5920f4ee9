"""``python -m generation metrics`` and ``python -m generation pareto`` (``register`` adds both to a parser).

``metrics`` scores every PNG under ``--images``. Each PNG needs a JSON sidecar with the same
stem, holding at least ``prompt_template`` (with a ``{concept}`` placeholder),
``concept_token``, ``superclass``, ``sampler``, ``params`` and ``seed_index``; optional keys
``concept``, ``prompt_set`` and ``method`` refine the grouping. ``--references`` is either a
folder of photos (one concept) or a folder with one sub-folder of photos per concept.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from generation.metrics.embedders import DEFAULT_CLIP_MODEL, DEFAULT_DINO_MODEL
from generation.metrics.scoring import DEFAULT_TS_VARIANT, TS_VARIANTS, ImageScore, ScoringItem, score_images
from generation.metrics.summaries import GroupSummary, overall, summarize
from generation.pareto import SweepPoint, params_label, pareto_front, plot_pareto, varying_params

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
REQUIRED_SIDECAR_KEYS = ("prompt_template", "concept_token", "superclass", "sampler", "params", "seed_index")
DEFAULT_PROMPT_SET = "default"


def register(subparsers) -> None:
    """Add the ``metrics`` and ``pareto`` subcommands to an argparse subparsers object."""
    metrics = subparsers.add_parser("metrics", help="CLIP-IS, DINO-IS and CLIP-TS of generated images")
    metrics.add_argument("--images", required=True, type=Path, help="folder of generated PNGs with JSON sidecars")
    metrics.add_argument(
        "--references", required=True, type=Path, help="folder of reference photos, or of one sub-folder per concept"
    )
    metrics.add_argument("--clip-model", default=DEFAULT_CLIP_MODEL, help="hub id or local folder")
    metrics.add_argument("--dino-model", default=DEFAULT_DINO_MODEL, help="hub id or local folder")
    metrics.add_argument("--ts-variant", default=DEFAULT_TS_VARIANT, choices=TS_VARIANTS)
    metrics.add_argument("--device", default="cpu")
    metrics.add_argument("--batch-size", type=int, default=16)
    metrics.add_argument("--out", type=Path, help="write the results as JSON here")
    metrics.set_defaults(handler=run_metrics)

    pareto = subparsers.add_parser("pareto", help="Pareto front and TS-vs-IS plot from metrics results")
    pareto.add_argument("results", nargs="+", type=Path, help="JSON written by the metrics command")
    pareto.add_argument("--out", required=True, type=Path, help="plot path; .svg and .png are written")
    pareto.add_argument("--is-metric", default="clip_is", choices=("clip_is", "dino_is"))
    pareto.add_argument(
        "--ts-metric", default="clip_ts", choices=("clip_ts", "clip_ts_without_class", "clip_ts_with_class")
    )
    pareto.add_argument("--category", default="*", choices=("*", "live", "object"))
    pareto.set_defaults(handler=run_pareto)


# ---------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------


def run_metrics(args: argparse.Namespace) -> int:
    references = find_references(args.references)
    items, methods, failures = read_generated(args.images)
    scores = score_images(
        items,
        references,
        clip_model=args.clip_model,
        dino_model=args.dino_model,
        device=args.device,
        batch_size=args.batch_size,
        ts_variant=args.ts_variant,
    )
    scores += failures
    summary = summarize(scores)
    results = {
        "settings": {
            "clip_model": str(args.clip_model),
            "dino_model": str(args.dino_model),
            "ts_variant": args.ts_variant,
            "images": str(args.images),
            "references": str(args.references),
        },
        "methods": methods,
        "images": [score.to_dict() for score in scores],
        "summary": [row.to_dict() for row in summary],
    }
    print(format_summary(summary, args.ts_variant))
    for score in scores:
        if score.error:
            print(f"error: {score.error}", file=sys.stderr)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 1 if any(score.error for score in scores) else 0


def find_references(folder: Path) -> list[Path] | dict[str, list[Path]]:
    """Photos directly in ``folder`` (one set) or in its sub-folders (a set per concept)."""
    if not folder.is_dir():
        raise SystemExit(f"--references {folder}: expected a folder of photos, got no such folder")
    photos = _images_in(folder)
    if photos:
        return photos
    per_concept = {sub.name: _images_in(sub) for sub in sorted(folder.iterdir()) if sub.is_dir()}
    per_concept = {concept: photos for concept, photos in per_concept.items() if photos}
    if not per_concept:
        raise SystemExit(f"--references {folder}: expected photos or per-concept sub-folders of photos, got none")
    return per_concept


def _images_in(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES)


def read_generated(folder: Path):
    """ScoringItems from the PNGs under ``folder``, the method table, and errors for bad sidecars."""
    if not folder.is_dir():
        raise SystemExit(f"--images {folder}: expected a folder of generated images, got no such folder")
    items, methods, failures = [], {}, []
    for image in sorted(folder.rglob("*.png")):
        try:
            sidecar = read_sidecar(image)
        except ValueError as error:
            failures.append(
                ImageScore(
                    item_id=str(image),
                    method="",
                    concept="",
                    category="",
                    prompt_set="",
                    prompt_template="",
                    seed_index=None,
                    error=str(error),
                )
            )
            continue
        params = sidecar["params"]
        method = sidecar.get("method") or method_name(sidecar["sampler"], params)
        methods[method] = {"family": sidecar["sampler"], "params": params, "label": params_label(params)}
        items.append(
            ScoringItem(
                image=image,
                prompt_template=sidecar["prompt_template"],
                concept_token=sidecar["concept_token"],
                superclass=sidecar["superclass"],
                method=method,
                concept=sidecar.get("concept", ""),
                prompt_set=sidecar.get("prompt_set") or DEFAULT_PROMPT_SET,
                seed_index=sidecar["seed_index"],
                item_id=str(image),
            )
        )
    if not items and not failures:
        raise SystemExit(f"--images {folder}: expected PNG images with JSON sidecars, got none")
    return items, methods, failures


def read_sidecar(image: Path) -> dict:
    path = image.with_suffix(".json")
    if not path.is_file():
        raise ValueError(f"item {image}: expected a JSON sidecar {path.name} next to it, got none")
    try:
        sidecar = json.loads(path.read_text())
    except ValueError as error:
        raise ValueError(f"sidecar {path}: expected JSON, got {error}") from error
    missing = [key for key in REQUIRED_SIDECAR_KEYS if key not in sidecar]
    if missing:
        raise ValueError(f"sidecar {path}: expected keys {list(REQUIRED_SIDECAR_KEYS)}, missing {missing}")
    if not isinstance(sidecar["params"], dict):
        raise ValueError(f'sidecar {path}: expected "params" to be an object, got {sidecar["params"]!r}')
    return sidecar


def method_name(sampler: str, params: dict) -> str:
    """``mixed(w_c=3.5, w_s=3.5)``: one method per sampler and hyper-parameter setting."""
    label = params_label(dict(sorted(params.items())))
    return f"{sampler}({label})" if label else sampler


def format_summary(rows, ts_variant: str) -> str:
    header = (
        f"{'method':<40} {'category':<8} {'concept':<20} {'set':<10} {'n':>5} "
        f"{'CLIP-IS':>8} {'DINO-IS':>8} {'CLIP-TS':>8} {'TS+cls':>8}"
    )
    lines = [f"CLIP-TS variant: {ts_variant}", header]
    for row in rows:
        means = [row.mean(name) for name in ("clip_is", "dino_is", "clip_ts", "clip_ts_with_class")]
        lines.append(
            f"{row.method[:40]:<40} {row.category:<8} {row.concept[:20]:<20} {row.prompt_set[:10]:<10} "
            f"{row.n_images:>5} " + " ".join(f"{value:>8.4f}" for value in means)
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# pareto
# ---------------------------------------------------------------------------


def run_pareto(args: argparse.Namespace) -> int:
    points = sweep_points(args.results, args.is_metric, args.ts_metric, args.category)
    written = plot_pareto(
        points, args.out, ts_label=_metric_label(args.ts_metric), is_label=_metric_label(args.is_metric)
    )
    print(f"Pareto front ({args.ts_metric} vs {args.is_metric}):")
    for point in pareto_front(points):
        print(f"  {point.family:<14} {point.label:<40} TS={point.ts:.4f} IS={point.image_similarity:.4f}")
    print("wrote " + ", ".join(str(path) for path in written))
    return 0


def sweep_points(result_files, is_metric: str, ts_metric: str, category: str = "*"):
    """One SweepPoint per method, from its row over all concepts (of ``category``) and prompt sets."""
    rows, methods = [], {}
    for path in result_files:
        try:
            results = json.loads(Path(path).read_text())
            rows += [GroupSummary.from_dict(row) for row in results["summary"]]
            methods.update(results.get("methods", {}))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise SystemExit(f"results {path}: expected JSON written by the metrics command, got {error!r}") from None
    names = sorted({row.method for row in rows if row.concept == "*" and row.category == category})
    if not names:
        raise SystemExit(f"results: expected summary rows for category {category!r}, got none")
    families = {name: methods.get(name, {}).get("family", name) for name in names}
    points = []
    for name in names:
        row = overall(rows, name, category)
        params = methods.get(name, {}).get("params", {})
        siblings = [methods.get(other, {}).get("params", {}) for other in names if families[other] == families[name]]
        points.append(
            SweepPoint(
                families[name],
                params_label(params, varying_params(siblings)) if len(siblings) > 1 else "",
                row.mean(ts_metric),
                row.mean(is_metric),
                params,
            )
        )
    return points


def _metric_label(metric: str) -> str:
    return {
        "clip_is": "CLIP-IS",
        "dino_is": "DINO-IS",
        "clip_ts": "CLIP-TS",
        "clip_ts_without_class": "CLIP-TS (concept removed)",
        "clip_ts_with_class": "CLIP-TS (superclass)",
    }[metric]
