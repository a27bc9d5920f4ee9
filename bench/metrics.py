"""Images scored per second (CLIP-IS, DINO-IS, both CLIP-TS variants), batched versus one by one.

    python bench/metrics.py                      # tiny models on CPU (and full-size on CUDA if present)
    python bench/metrics.py --sizes full --device cuda --images 256 --batch-size 64

``full`` builds random-weight models of the real architectures: CLIP ViT-B/32 and DINOv2
ViT-S/14, with their real preprocessing sizes. Reference embeddings are warmed first, so both
modes measure generated images only (decode, preprocessing, CLIP image, DINO image and text).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from generation.metrics import Embedder, ScoringItem, score_images
from generation.tiny.encoders import CLIP_PREPROCESSING, DINO_PREPROCESSING, save_tiny_clip, save_tiny_dino
from generation.tiny.tokenizer import PROMPT_WORDS, build_tokenizer

TEMPLATES = [
    "a {concept} in the jungle",
    "a red {concept}",
    "a {concept} wearing a santa hat",
    "a photo of a {concept}",
]


def save_full_size_models(folder: Path) -> tuple[Path, Path]:
    """Random-weight CLIP ViT-B/32 and DINOv2 ViT-S/14 with the hub models' preprocessing."""
    import torch
    from transformers import CLIPConfig, CLIPModel, Dinov2Config, Dinov2Model

    clip_dir, dino_dir = folder / "clip-vit-b32", folder / "dinov2-s14"
    if not (clip_dir / "config.json").is_file():
        torch.manual_seed(0)
        tokenizer = build_tokenizer(PROMPT_WORDS)
        text = {
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        }  # vocab stays 49408, the real size
        CLIPModel(CLIPConfig(text_config=text, vision_config={"patch_size": 32})).save_pretrained(clip_dir)
        tokenizer.save_pretrained(clip_dir)
        _write_preprocessing(clip_dir, CLIP_PREPROCESSING, resize=224, crop=224)
    if not (dino_dir / "config.json").is_file():
        torch.manual_seed(0)
        config = Dinov2Config(
            hidden_size=384, num_hidden_layers=12, num_attention_heads=6, mlp_ratio=4, patch_size=14, image_size=518
        )
        Dinov2Model(config).save_pretrained(dino_dir)
        _write_preprocessing(dino_dir, DINO_PREPROCESSING, resize=256, crop=224)
    return clip_dir, dino_dir


def _write_preprocessing(folder: Path, settings: dict, resize: int, crop: int) -> None:
    settings = {**settings, "size": {"shortest_edge": resize}, "crop_size": {"height": crop, "width": crop}}
    (folder / "preprocessor_config.json").write_text(json.dumps(settings, indent=2))


def write_images(folder: Path, count: int, size: int, seed: int) -> list[Path]:
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        path = folder / f"{index:04d}.png"
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def measure(embedder: Embedder, items: list[ScoringItem], references: list[Path], batch_size: int) -> dict:
    import torch

    def synchronise():
        if embedder.device.startswith("cuda"):
            torch.cuda.synchronize()

    score_images(items[:2], references, embedder=embedder)  # warm-up: load models, cache references
    results = {}
    for mode, size in (("batched", batch_size), ("one_by_one", 1)):
        embedder.batch_size = size
        synchronise()
        start = time.perf_counter()
        if mode == "batched":
            scores = score_images(items, references, embedder=embedder)
        else:
            scores = [score for item in items for score in score_images([item], references, embedder=embedder)]
        synchronise()
        elapsed = time.perf_counter() - start
        assert all(score.error is None for score in scores), [s.error for s in scores if s.error][:3]
        results[mode] = {"seconds": round(elapsed, 3), "images_per_second": round(len(items) / elapsed, 2)}
    results["speedup"] = round(results["batched"]["images_per_second"] / results["one_by_one"]["images_per_second"], 2)
    return results


def main(argv=None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        nargs="+",
        choices=("tiny", "full"),
        default=None,
        help="default: tiny, plus full when CUDA is available",
    )
    parser.add_argument("--device", default=None, help="default: cpu for tiny, cuda for full when available")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--references", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--work-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available()
    sizes = args.sizes or (["tiny", "full"] if cuda else ["tiny"])

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="metrics-bench-"))
    generated = write_images(work / "generated", args.images, args.image_size, seed=1)
    references = write_images(work / "references", args.references, args.image_size, seed=2)
    for size in sizes:
        if size == "tiny":
            clip_dir, dino_dir = save_tiny_clip(work / "models"), save_tiny_dino(work / "models")
        else:
            clip_dir, dino_dir = save_full_size_models(work / "models")
        device = args.device or ("cuda" if size == "full" and cuda else "cpu")
        items = [
            ScoringItem(path, TEMPLATES[index % len(TEMPLATES)], "sks", "dog", method="bench", concept="dog")
            for index, path in enumerate(generated)
        ]
        embedder = Embedder(clip_dir, dino_dir, device=device, batch_size=args.batch_size)
        result = measure(embedder, items, references, args.batch_size)
        report = {
            "models": size,
            "device": device,
            "images": args.images,
            "image_size": args.image_size,
            "batch_size": args.batch_size,
            "torch_threads": torch.get_num_threads(),
            **result,
        }
        if device.startswith("cuda"):
            report["gpu"] = torch.cuda.get_device_name()
        print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
