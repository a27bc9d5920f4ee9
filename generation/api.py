"""The Python API the web platform calls: ``generate(request)``, ``save_sample(sample, out_dir)`` and the checks.

``check_request`` validates a request without loading a model; ``check_steps`` and ``MAX_STEPS`` (from
``generation.steps``) are the one step limit the loop and the samplers' step windows use too.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generation.errors import ParameterError
from generation.prompts import build_prompts, check_template
from generation.samplers import build_sampler, validate_params
from generation.seeds import seed_for
from generation.steps import MAX_STEPS, check_steps

__all__ = [
    "MAX_STEPS",
    "GeneratedSample",
    "GenerationRequest",
    "check_request",
    "check_steps",
    "generate",
    "sample_stem",
    "save_sample",
]

Progress = Callable[[int, int, int, int], None]

DEFAULT_BATCH = {"cpu": 4, "cuda": 8}


@dataclass
class GenerationRequest:
    model: str
    concept_token: str
    superclass: str
    prompt_template: str
    sampler: str
    params: dict
    seed_indices: list[int]
    personalization: str | None = None
    steps: int = 50
    device: str = "auto"
    dtype: str | None = None
    batch_size: int | None = None
    save_masks: bool = False


@dataclass
class GeneratedSample:
    seed_index: int
    seed: int
    image: Any  # PIL.Image.Image
    prompt: str
    superclass_prompt: str
    sampler: str
    params: dict
    unet_evaluations: int
    wall_time: float
    steps: int
    model: str
    personalization: str | None
    mask: Any = None
    prompt_template: str = ""
    concept_token: str = ""
    superclass: str = ""
    device: str = ""
    dtype: str = ""
    prompt_truncated: bool = False

    def metadata(self) -> dict:
        """Everything but the images, JSON-serialisable (the sidecar's content)."""
        return {
            "seed_index": self.seed_index,
            "seed": self.seed,
            "prompt_template": self.prompt_template,
            "prompt": self.prompt,
            "superclass_prompt": self.superclass_prompt,
            "concept_token": self.concept_token,
            "superclass": self.superclass,
            "sampler": self.sampler,
            "params": self.params,
            "steps": self.steps,
            "unet_evaluations": self.unet_evaluations,
            "wall_time": self.wall_time,
            "model": self.model,
            "personalization": self.personalization,
            "device": self.device,
            "dtype": self.dtype,
            "prompt_truncated": self.prompt_truncated,
            "image_size": list(self.image.size) if self.image is not None else None,
        }


def check_request(request: GenerationRequest) -> dict:
    """Validate everything that can be checked without loading a model; return the full parameters."""
    params = validate_params(request.sampler, request.params)
    check_template(request.prompt_template)
    build_prompts(request.prompt_template, request.concept_token, request.superclass)
    check_steps(request.steps)
    if not request.seed_indices:
        raise ParameterError("seed_indices: expected at least one seed index, got none")
    for index in request.seed_indices:
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise ParameterError(f"seed_indices: expected integers >= 0, got {index!r}")
    if request.batch_size is not None and (not isinstance(request.batch_size, int) or request.batch_size < 1):
        raise ParameterError(f"batch_size: expected an integer >= 1, got {request.batch_size!r}")
    return params


def prepare(request: GenerationRequest) -> None:
    """Load the request's pipeline into the process cache, so that a later `generate` starts sampling at once."""
    from generation.pipelines import load_pipeline

    check_request(request)
    load_pipeline(request.model, request.personalization, dtype=request.dtype, device=request.device)


def generate(request: GenerationRequest, progress: Progress | None = None) -> list[GeneratedSample]:
    """Generate one image per seed index; ``progress(images_done, images_total, step, steps)`` after every step."""
    from generation.loop import sample_batch
    from generation.pipelines import load_pipeline

    params = check_request(request)
    sampler = build_sampler(request.sampler, params)
    prompts = build_prompts(request.prompt_template, request.concept_token, request.superclass)
    pipeline = load_pipeline(request.model, request.personalization, dtype=request.dtype, device=request.device)
    device = str(pipeline.unet.device)
    batch_size = request.batch_size or DEFAULT_BATCH.get(pipeline.unet.device.type, 4)
    indices = list(request.seed_indices)
    total = len(indices)
    samples: list[GeneratedSample] = []
    for start in range(0, total, batch_size):
        chunk = indices[start : start + batch_size]
        seeds = [seed_for(request.prompt_template, index) for index in chunk]

        def on_step(step: int, done: int = start) -> None:
            if progress is not None:
                progress(done, total, step, request.steps)

        began = time.perf_counter()
        result = sample_batch(pipeline, sampler, prompts, seeds, steps=request.steps, on_step=on_step)
        share = (time.perf_counter() - began) / len(chunk)
        for offset, (index, seed) in enumerate(zip(chunk, seeds, strict=True)):
            samples.append(
                GeneratedSample(
                    seed_index=index,
                    seed=seed,
                    image=result.images[offset],
                    prompt=prompts.concept,
                    superclass_prompt=prompts.superclass,
                    sampler=request.sampler,
                    params=dict(params),
                    unet_evaluations=result.unet_evaluations,
                    wall_time=share,
                    steps=request.steps,
                    model=str(request.model),
                    personalization=str(request.personalization) if request.personalization else None,
                    mask=result.masks[offset] if request.save_masks and result.masks else None,
                    prompt_template=request.prompt_template,
                    concept_token=request.concept_token,
                    superclass=request.superclass,
                    device=device,
                    dtype=str(pipeline.unet.dtype).removeprefix("torch."),
                    prompt_truncated=result.prompt_truncated,
                )
            )
        if progress is not None:
            progress(start + len(chunk), total, request.steps, request.steps)
    return samples


def sample_stem(sample: GeneratedSample) -> str:
    return f"{sample.sampler}-seed{sample.seed_index:04d}"


def save_sample(sample: GeneratedSample, out_dir: str | os.PathLike) -> Path:
    """Write ``<stem>.png`` and ``<stem>.json`` (and ``<stem>.mask.webp``) atomically; return the PNG path."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    stem = sample_stem(sample)
    image_path = folder / f"{stem}.png"
    _atomic_write(image_path, lambda handle: sample.image.save(handle, format="PNG"))
    metadata = sample.metadata()
    metadata["image"] = image_path.name
    if sample.mask is not None:
        # Lossless WebP, not PNG: tools that score every *.png in a folder must not mistake it for an image.
        mask_path = folder / f"{stem}.mask.webp"
        _atomic_write(mask_path, lambda handle: sample.mask.save(handle, format="WEBP", lossless=True))
        metadata["mask"] = mask_path.name
    text = json.dumps(metadata, indent=2, sort_keys=True) + "\n"
    _atomic_write(folder / f"{stem}.json", lambda handle: handle.write(text.encode("utf-8")))
    return image_path


def _atomic_write(path: Path, write: Callable[[Any], Any]) -> None:
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            write(handle)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
