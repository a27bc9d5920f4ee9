"""``python -m generation world ...``: train the world's models, write its photos, measure it."""

from __future__ import annotations

import argparse
from pathlib import Path

from generation.world.paths import SHIPPED_MODELS


def register(subparsers) -> None:
    world = subparsers.add_parser("world", help="the procedural world: train its models, write its photos")
    commands = world.add_subparsers(dest="world_command", required=True)

    train = commands.add_parser("train", help="render the world and train its models (seeded, resumable)")
    train.add_argument("directory", type=Path, nargs="?", default=SHIPPED_MODELS)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", default="auto")
    train.add_argument("--quick", action="store_true", help="a smoke-test plan: tiny sets, a few steps")
    train.set_defaults(handler=run_train)

    photos = commands.add_parser("photos", help="write the subjects' reference photos (DreamBooth layout)")
    photos.add_argument("directory", type=Path)
    photos.add_argument("--seed", type=int, default=0)
    photos.set_defaults(handler=run_photos)


def run_train(args: argparse.Namespace) -> int:
    from generation.world.train import Plan, train_world

    train_world(args.directory, seed=args.seed, device=args.device, plan=Plan.quick() if args.quick else Plan())
    return 0


def run_photos(args: argparse.Namespace) -> int:
    from generation.world.data import write_subject_photos

    print(write_subject_photos(args.directory, seed=args.seed))
    return 0
