"""Generation throughput: images/s and UNet evaluations per image for every sampler.

Compares each sampler of ``generation.loop`` with the path the paper's reference code takes (float32,
every branch at every step: three for the weighted samplers, four for Photoswap, five for ProFusion
with R = 1; ``build_sampler(..., paper_batching=True)``) and with plain diffusers
``StableDiffusionPipeline`` (Base, CFG 7.0), on the same starting latents and the same number of
steps, in one process. On CPU it uses the offline tiny model; with ``--device cuda`` it builds an SD-2-base-sized
pipeline from configs (random weights: cost does not depend on values) in float16.

    python bench/generation.py                      # CPU, tiny model
    python bench/generation.py --device cuda        # GPU, SD-2-base-sized UNet, fp16
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TEMPLATE = "a {concept} in the snow"


def sd2_base_pipeline(dtype):
    """An SD-2-base-sized pipeline from configs: UNet 320-640-1280-1280, 1024-wide text context."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from generation.tiny.tokenizer import PROMPT_WORDS, build_tokenizer

    tokenizer = build_tokenizer(PROMPT_WORDS)  # the tokenizer does not change UNet cost
    unet = UNet2DConditionModel(
        sample_size=64,
        block_out_channels=(320, 640, 1280, 1280),
        attention_head_dim=(5, 10, 20, 20),
        cross_attention_dim=1024,
        use_linear_projection=True,
        layers_per_block=2,
    )
    vae = AutoencoderKL(
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=2,
        latent_channels=4,
        sample_size=512,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=1024,
            intermediate_size=4096,
            num_hidden_layers=23,
            num_attention_heads=16,
            max_position_embeddings=77,
            hidden_act="gelu",
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipeline = StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipeline.to("cuda", dtype)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def tiny_pipeline():
    from generation.pipelines import load_pipeline
    from generation.tiny import ensure_tiny_model

    folder = ensure_tiny_model(Path(tempfile.gettempdir()) / "generation-bench-tiny")
    return load_pipeline(folder, device="cpu")


def synchronize(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def sampler_runner(pipeline, name, seeds, steps, paper_batching=False):
    """A zero-argument function that runs one batch of the sampler; returns evaluations per image."""
    from generation.loop import sample_batch
    from generation.prompts import build_prompts
    from generation.samplers import build_sampler

    sampler = build_sampler(name, {}, paper_batching=paper_batching)
    prompts = build_prompts(TEMPLATE, "sks", "dog")
    return lambda steps=steps: sample_batch(pipeline, sampler, prompts, seeds, steps=steps).unet_evaluations


DIFFUSERS = "diffusers StableDiffusionPipeline (base)"


def paper_label(name: str) -> str:
    return f"{name} (paper-code path)"


def diffusers_runner(pipeline, seeds, steps):
    """Plain StableDiffusionPipeline, Base with w = 7.0, same latents; 2 evaluations per image per step."""
    from generation.loop import initial_latents

    size = pipeline.unet.config.sample_size
    latents = initial_latents(seeds, (size, size)).to(pipeline.unet.device, pipeline.unet.dtype)
    prompt = ["a sks dog in the snow"] * len(seeds)

    def run(steps=steps):
        pipeline(prompt, latents=latents, guidance_scale=7.0, num_inference_steps=steps)
        return 2 * steps

    return run


def time_round_robin(runners: dict, device: str, repeats: int) -> dict:
    """Time every runner ``repeats`` times, interleaved, so load from other processes hits all alike;
    keep the fastest time of each (the least disturbed)."""
    for run in runners.values():
        run(steps=2)  # warm-up: kernel selection, allocator
    best = {name: float("inf") for name in runners}
    evaluations = {}
    for _ in range(repeats):
        for name, run in runners.items():
            synchronize(device)
            began = time.perf_counter()
            evaluations[name] = run()
            synchronize(device)
            best[name] = min(best[name], time.perf_counter() - began)
    return {name: (best[name], evaluations[name]) for name in runners}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--dtype", default="float16", help="GPU dtype: float16 or bfloat16")
    parser.add_argument("--images", type=int, default=4, help="images per batch (one batch per timing)")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument(
        "--repeats", type=int, default=3, help="interleaved timings per sampler; the fastest is reported"
    )
    parser.add_argument("--samplers", default="all", help="comma-separated names, or all")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args(argv)

    import torch

    from generation.samplers import SAMPLER_NAMES
    from generation.seeds import seed_for

    if args.device.startswith("cuda"):
        pipeline = sd2_base_pipeline(getattr(torch, args.dtype))
        paper_pipeline = sd2_base_pipeline(torch.float32)
        paper_pipeline.unet.load_state_dict(pipeline.unet.state_dict())
        device_name = torch.cuda.get_device_name()
        model = f"SD-2-base-sized UNet from config, random weights, {args.dtype} (paper-code path float32)"
    else:
        pipeline = paper_pipeline = tiny_pipeline()
        device_name = f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"
        model = "offline tiny model (64 px, 8x8 latents), float32"
    names = SAMPLER_NAMES if args.samplers == "all" else tuple(args.samplers.split(","))
    seeds = [seed_for(TEMPLATE, index) for index in range(args.images)]

    runners = {DIFFUSERS: diffusers_runner(pipeline, seeds, args.steps)}
    for name in names:
        runners[name] = sampler_runner(pipeline, name, seeds, args.steps)
        runners[paper_label(name)] = sampler_runner(paper_pipeline, name, seeds, args.steps, paper_batching=True)
    timed = time_round_robin(runners, args.device, args.repeats)
    rows = [
        {"sampler": name, "seconds": seconds, "images_per_s": args.images / seconds, "evaluations_per_image": evals}
        for name, (seconds, evals) in timed.items()
    ]

    print(f"device: {device_name}; model: {model}")
    print(
        f"torch {torch.__version__}; {args.images} images per batch, {args.steps} steps, "
        f"fastest of {args.repeats} interleaved runs"
    )
    print(f"{'sampler':<42} {'images/s':>9} {'s/image':>9} {'UNet evals/image':>17} {'vs paper code':>14}")
    for row in rows:
        paper = timed.get(paper_label(row["sampler"]))
        speedup = f"{paper[0] / row['seconds']:.2f}x" if paper else ""
        print(
            f"{row['sampler']:<42} {row['images_per_s']:>9.2f} {row['seconds'] / args.images:>9.3f} "
            f"{row['evaluations_per_image']:>17} {speedup:>14}"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"device": device_name, "model": model, "steps": args.steps, "images": args.images, "rows": rows},
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
