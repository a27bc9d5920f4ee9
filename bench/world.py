"""What the world's models do: prompt following, subject fidelity after fine-tuning, the Mixed trade-off.

Samples through the platform's own generation path on the shipped world models (or ``--models DIR``)
and reads every picture with the world's judge, CLIP and DINO. Prints one block per measurement and
writes them all as JSON (``--out``). docs/world.md records the results.

    python bench/world.py                 # the full measurement (about 30 min on 2 CPU cores)
    python bench/world.py --quick         # a small grid, for a smoke test
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    from generation.world.paths import SHIPPED_MODELS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=SHIPPED_MODELS)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--only", default="following,fidelity,sweep", help="comma-separated: following, fidelity, sweep (default: all)"
    )
    args = parser.parse_args()
    parts = set(args.only.split(","))
    if not parts <= {"following", "fidelity", "sweep"}:
        parser.error(f"--only: expected some of following, fidelity, sweep, got {args.only!r}")

    from generation.world import evaluation
    from generation.world.judge import Judge
    from generation.world.vocabulary import SHAPES

    judge = Judge(args.models / "judge")
    pipeline, subjects_dir = args.models / "pipeline", args.models / "subjects"
    shipped = sorted(p.name for p in subjects_dir.iterdir() if p.is_dir())
    quick = args.quick
    results: dict = {"models": str(args.models), "steps": args.steps}

    seeds = [0, 1] if quick else [0, 1, 2, 3]
    templates = evaluation.SCENE_TEMPLATES[:3] if quick else evaluation.SCENE_TEMPLATES
    if "following" in parts:
        results["prompt_following"] = _following(evaluation, judge, pipeline, seeds, args, SHAPES, templates)
    if "fidelity" in parts:
        results["subject_fidelity"] = _fidelity(evaluation, judge, pipeline, subjects_dir, shipped, args, templates)
    if "sweep" in parts:
        results["mixed_sweep"] = _sweep(evaluation, judge, pipeline, subjects_dir, shipped, args)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


def _following(evaluation, judge, pipeline, seeds, args, shapes, templates) -> dict:
    started = time.monotonic()
    following = evaluation.prompt_following(
        judge, pipeline, seeds, args.steps, shapes[:3] if args.quick else shapes, templates
    )
    print(
        f"prompt following ({following['images']} superclass images): scene {following['scene']:.1%} "
        f"(chance 1/8), shape {following['shape']:.1%} (chance 1/6)  [{time.monotonic() - started:.0f} s]",
        flush=True,
    )
    for key in ("shape_by_shape", "shape_by_scene"):
        print(f"  {key}: " + ", ".join(f"{name} {share:.0%}" for name, share in following[key].items()), flush=True)
    return following


def _fidelity(evaluation, judge, pipeline, subjects_dir, shipped, args, templates) -> dict:
    started = time.monotonic()
    fidelity = evaluation.subject_fidelity(
        judge, pipeline, subjects_dir, shipped[:2] if args.quick else shipped, [0, 1], args.steps, templates
    )
    print("subject fidelity, Base sampling of 'a sks <shape> <scene>' with each subject's LoRA:", flush=True)
    for slug, accuracy in fidelity.items():
        print(f"  {slug:14s} {accuracy:.1%}")
    print(f"  [{time.monotonic() - started:.0f} s]", flush=True)
    return fidelity


def _sweep(evaluation, judge, pipeline, subjects_dir, shipped, args) -> dict:
    from generation.metrics.embedders import Embedder
    from generation.world.data import write_subject_photos
    from generation.world.vocabulary import PROMPT_TEMPLATES, SUBJECTS

    started = time.monotonic()
    quick = args.quick
    slugs = shipped[:1] if quick else shipped[:4]
    sweep_templates = PROMPT_TEMPLATES[:2] if quick else PROMPT_TEMPLATES[:8]
    sweep_seeds = [0, 1] if quick else [0, 1, 2, 3]
    w_s_values = [0.0, 3.5, 7.0] if quick else [0.0, 2.0, 3.5, 5.0, 7.0]
    embedder = Embedder(str(args.models / "clip"), str(args.models / "dino"))
    with tempfile.TemporaryDirectory() as folder:
        photos = write_subject_photos(folder)
        references = {s.slug: sorted((photos / s.slug).glob("*.jpg")) for s in SUBJECTS}
        rows = evaluation.mixed_sweep(
            judge,
            embedder,
            pipeline,
            subjects_dir,
            references,
            slugs,
            sweep_templates,
            sweep_seeds,
            w_s_values,
            args.steps,
        )
    trade_off = evaluation.trade_off(rows)
    summary = {
        "subjects": slugs,
        "prompts": len(sweep_templates),
        "seeds": len(sweep_seeds),
        "w_s": w_s_values,
        "images": len(rows),
        "trade_off": trade_off,
    }
    print(
        f"Mixed sweep, w_c = 7 - w_s: {len(slugs)} subjects x {len(sweep_templates)} prompts x "
        f"{len(sweep_seeds)} seeds x {len(w_s_values)} values of w_s",
        flush=True,
    )
    print("  metric          Spearman(means)  Spearman(cells)  Spearman(images)  mean at each w_s")
    for metric, found in trade_off.items():
        means = " ".join(f"{value:.3f}" for value in found["mean_by_w_s"].values())
        print(
            f"  {metric:14s} {found['spearman_means']:+.3f}           {found['spearman_cells']:+.3f}           "
            f"{found['spearman_images']:+.3f}            {means}"
        )
    print(f"  [{time.monotonic() - started:.0f} s]", flush=True)
    return summary


if __name__ == "__main__":
    raise SystemExit(main())
