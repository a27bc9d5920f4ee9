"""Fine-tuning speed: steps per second of ``generation.training.fine_tune`` for LoRA and full DreamBooth.

Each figure is set against a baseline measured in the same run: the bare training step of the same UNet
(random latents and noise, forward, MSE, backward, AdamW step; for LoRA the same peft adapters), with
none of the function's work around it (per-step seeded data order and noise, latent sampling, gradient
clipping, progress). The ratio says what the function costs over the step it cannot avoid. On CPU the
base is the offline tiny model; on a GPU an SD-2-base-sized pipeline built from configs (random
weights: cost does not depend on values), bf16 autocast as ``fine_tune`` uses it.

    python bench/training.py                      # CPU, tiny model
    python bench/training.py --device cuda        # GPU, SD-2-base-sized UNet at 512 px
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def base_model(device: str, folder: Path) -> Path:
    """A diffusers folder: the tiny model on CPU, an SD-2-base-sized random pipeline on a GPU."""
    if not device.startswith("cuda"):
        from generation.tiny import ensure_tiny_model

        return ensure_tiny_model(Path(tempfile.gettempdir()) / "generation-bench-tiny")
    import importlib.util

    import torch

    # the SD-2-base-sized pipeline of bench/generation.py (a file name the generation package shadows)
    spec = importlib.util.spec_from_file_location("bench_generation", Path(__file__).with_name("generation.py"))
    bench_generation = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_generation)
    pipeline = bench_generation.sd2_base_pipeline(torch.float32).to("cpu")
    pipeline.save_pretrained(folder / "sd2-base-sized", safe_serialization=True)
    return folder / "sd2-base-sized"


def photos(folder: Path, count: int = 4) -> list[Path]:
    from PIL import Image, ImageDraw

    paths = []
    for index in range(count):
        image = Image.new("RGB", (600, 520), (40, 150 + 20 * index, 70))
        ImageDraw.Draw(image).ellipse((80 + 10 * index, 60, 420, 400), fill=(220, 30, 30))
        paths.append(folder / f"photo-{index}.png")
        image.save(paths[-1])
    return paths


def function_speed(base, images, method, steps, warmup, resolution, device, out: Path) -> float:
    """Steps per second of fine_tune over the steps after ``warmup``."""
    from generation.training import FineTuneSettings, fine_tune

    stamps = {}
    settings = FineTuneSettings(method=method, steps=steps, resolution=resolution, checkpoint_every=steps)
    fine_tune(
        base,
        images,
        "a photo of sks dog",
        "a photo of dog",
        settings,
        out / f"result-{method}",
        device=device,
        on_progress=lambda progress: stamps.__setitem__(progress.step, _now(device)),
    )
    return (steps - warmup) / (stamps[steps] - stamps[warmup])


def baseline_speed(base, method, steps, warmup, resolution, device) -> float:
    """Steps per second of the bare step: forward, loss, backward, optimizer, nothing else."""
    import torch
    import torch.nn.functional as F
    from diffusers import UNet2DConditionModel
    from peft import LoraConfig

    from generation.training.settings import LORA_TARGET_MODULES

    unet = UNet2DConditionModel.from_pretrained(Path(base) / "unet").to(device)
    autocast = contextlib.nullcontext()
    if device.startswith("cuda"):
        autocast = torch.autocast("cuda", dtype=torch.bfloat16)
    if method == "lora":
        unet.requires_grad_(False)
        if device.startswith("cuda"):
            unet.to(dtype=torch.bfloat16)
        unet.add_adapter(
            LoraConfig(r=4, lora_alpha=4, init_lora_weights="gaussian", target_modules=LORA_TARGET_MODULES["attention"])
        )
        for parameter in unet.parameters():
            if parameter.requires_grad:
                parameter.data = parameter.data.float()
    parameters = [p for p in unet.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=1e-4)
    size = resolution // 8
    latents = torch.randn(1, 4, size, size, device=device)
    noise = torch.randn_like(latents)
    context = torch.randn(1, 77, unet.config.cross_attention_dim, device=device)
    timesteps = torch.tensor([500], device=device)
    unet.train()
    stamps = {}
    for step in range(1, steps + 1):
        with autocast:
            prediction = unet(latents + noise, timesteps, context).sample
        F.mse_loss(prediction.float(), noise).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        stamps[step] = _now(device)
    return (steps - warmup) / (stamps[steps] - stamps[warmup])


def _now(device: str) -> float:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--steps", type=int, help="timed steps per run (default 30 on CPU, 40 on a GPU)")
    parser.add_argument("--resolution", type=int, help="default: 64 on CPU (the tiny model), 512 on a GPU")
    parser.add_argument("--methods", default="lora,dreambooth")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args(argv)

    import torch

    from generation.pipelines import quiet_loading

    quiet_loading()
    gpu = args.device.startswith("cuda")
    steps = args.steps or (40 if gpu else 30)
    warmup = 5
    resolution = args.resolution or (512 if gpu else 64)
    with tempfile.TemporaryDirectory(prefix="bench-training-") as scratch:
        folder = Path(scratch)
        base = base_model(args.device, folder)
        images = photos(folder)
        rows = []
        for method in args.methods.split(","):
            ours = function_speed(base, images, method, steps, warmup, resolution, args.device, folder)
            bare = baseline_speed(base, method, steps, warmup, resolution, args.device)
            rows.append(
                {"method": method, "fine_tune_steps_per_s": ours, "bare_steps_per_s": bare, "ratio": ours / bare}
            )
    if gpu:
        device_name, model = (
            torch.cuda.get_device_name(),
            "SD-2-base-sized UNet from config, random weights, bf16 autocast",
        )
    else:
        device_name = f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"
        model = "offline tiny model, float32"
    print(f"device: {device_name}; model: {model}; {resolution} px, batch 1")
    print(f"torch {torch.__version__}; {steps} steps per run, the first {warmup} untimed")
    print(f"{'method':<12} {'fine_tune steps/s':>18} {'bare step steps/s':>18} {'ratio':>7}")
    for row in rows:
        print(
            f"{row['method']:<12} {row['fine_tune_steps_per_s']:>18.2f} {row['bare_steps_per_s']:>18.2f} "
            f"{row['ratio']:>7.2f}"
        )
    if args.json:
        args.json.write_text(json.dumps({"device": device_name, "model": model, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
