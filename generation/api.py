"""The Python API the web platform calls: ``generate(request)``, ``save_sample(sample, out_dir)`` and the checks.

``check_request`` validates a request without loading a model; ``check_steps`` and ``MAX_STEPS`` (from
``generation.steps``) are the one step limit the loop and the samplers' step windows use too.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from generation.errors import MixedPromptsError, ParameterError
from generation.prompts import build_prompts, check_template
from generation.samplers import build_sampler, validate_params
from generation.seeds import seed_for
from generation.speed import SpeedOptions
from generation.steps import MAX_STEPS, check_steps

__all__ = [
    "MAX_STEPS",
    "GeneratedSample",
    "GenerationRequest",
    "check_base_model",
    "check_request",
    "check_steps",
    "generate",
    "generate_many",
    "iter_samples",
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
    speed: SpeedOptions = field(default_factory=SpeedOptions)


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
    backbone: str = ""

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
            "backbone": self.backbone,
            "image_size": list(self.image.size) if self.image is not None else None,
        }


def check_request(request: GenerationRequest) -> dict:
    """Validate everything that can be checked without loading a model; return the full parameters."""
    params = validate_params(request.sampler, request.params, request.steps)
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
    if not isinstance(request.speed, SpeedOptions):
        raise ParameterError(f"speed: expected SpeedOptions, got {type(request.speed).__name__}")
    request.speed.check()
    return params


def check_base_model(model: str | os.PathLike) -> str | None:
    """The backbone ("sd", "sdxl" or "pixart_alpha") of a base model in a local folder; ModelLoadError if it
    is none of them. None for a hub id or a path this machine does not have: the worker that loads it checks.

    Reads ``model_index.json`` only, so the admin can call it on every save. Every sampler runs on every
    backbone (``generation.backbones``), so the backbone is the one thing to check.
    """
    from generation.pipelines import identify_backbone

    if not model or not Path(model).expanduser().exists():
        return None
    return identify_backbone(model)


def prepare(request: GenerationRequest) -> None:
    """Load the request's pipeline into the process cache, so that a later `generate` starts sampling at once."""
    from generation.pipelines import load_pipeline

    check_request(request)
    load_pipeline(
        request.model,
        request.personalization,
        dtype=request.dtype,
        device=request.device,
        compile=request.speed.compile,
        compile_cache_dir=request.speed.compile_cache_dir,
    )


def generate(request: GenerationRequest, progress: Progress | None = None) -> list[GeneratedSample]:
    """Generate one image per seed index; ``progress(images_done, images_total, step, steps)`` after every step."""
    return generate_many([request], progress)[0]


def generate_many(
    requests: Sequence[GenerationRequest], progress: Progress | None = None
) -> list[list[GeneratedSample]]:
    """Generate several prompts of one concept with one method, packing their seeds into shared denoiser calls.

    The requests may differ only in their prompt template and seed indices. Images per call are at most
    the first request's ``batch_size`` (else the device default), and on the GPU no more than
    ``speed.memory_budget_gib`` allows. A sampler that reads one prompt's token positions (Masked,
    Photoswap) gets one prompt per call. Returns the samples of each request, in order; every image is
    the one that request alone would give (to float tolerance).
    """
    results: list[list[GeneratedSample]] = [[] for _ in requests]
    for number, sample in iter_samples(requests, progress):
        results[number].append(sample)
    return results


def iter_samples(
    requests: Sequence[GenerationRequest], progress: Progress | None = None
) -> Iterator[tuple[int, GeneratedSample]]:
    """``generate_many`` one denoiser call at a time: yields (request number, sample) as soon as its call is done.

    A caller that stores each image as it comes (the run worker) loses at most one call's images if it stops.
    """
    from generation.backbones import backbone_of
    from generation.pipelines import load_pipeline

    if not requests:
        return
    params = [check_request(request) for request in requests]
    first = requests[0]
    _check_one_group(requests, params)
    pipeline = load_pipeline(
        first.model,
        first.personalization,
        dtype=first.dtype,
        device=first.device,
        compile=first.speed.compile,
        compile_cache_dir=first.speed.compile_cache_dir,
    )
    backbone = backbone_of(pipeline)
    first.speed.check(backbone.denoiser.device.type)
    sampler = build_sampler(first.sampler, params[0])
    rows = [(number, index) for number, request in enumerate(requests) for index in request.seed_indices]
    per_call = _images_per_call(first, backbone, sampler)
    done, one_prompt_per_call = 0, False
    while done < len(rows):
        chunk = _next_chunk(rows, done, per_call, one_prompt_per_call)
        try:
            samples = _run_chunk(pipeline, backbone, sampler, requests, params[0], chunk, progress, done, len(rows))
        except MixedPromptsError:
            one_prompt_per_call = True
            continue
        done += len(chunk)
        if progress is not None:
            progress(done, len(rows), first.steps, first.steps)
        for (number, _), sample in zip(chunk, samples, strict=True):
            yield number, sample


_GROUP_FIELDS = (
    "model",
    "personalization",
    "concept_token",
    "superclass",
    "sampler",
    "steps",
    "device",
    "dtype",
    "batch_size",
    "speed",
)


def _check_one_group(requests: Sequence[GenerationRequest], params: list[dict]) -> None:
    first = requests[0]
    for request, full in zip(requests, params, strict=True):
        differing = [name for name in _GROUP_FIELDS if getattr(request, name) != getattr(first, name)]
        if full != params[0]:
            differing.append("params")
        if differing:
            raise ParameterError(
                "requests: expected one model, concept, sampler and settings for all, "
                f"got different {', '.join(differing)}"
            )


def _images_per_call(request: GenerationRequest, backbone, sampler) -> int:
    """``batch_size`` (else the device default), lowered to what the memory budget holds where one is set."""
    most = request.batch_size or DEFAULT_BATCH.get(backbone.denoiser.device.type, 4)
    if not request.speed.memory_budget_gib:
        return most
    from generation.speed import rows_for_budget

    rows_per_image = max(len(sampler.branches(step)) for step in range(request.steps))
    fits = max(1, rows_for_budget(backbone, request.speed.memory_budget_gib) // rows_per_image)
    return fits if request.batch_size is None else min(most, fits)


def _next_chunk(rows: list[tuple[int, int]], start: int, size: int, one_prompt: bool) -> list[tuple[int, int]]:
    chunk = rows[start : start + size]
    if one_prompt:
        chunk = [row for row in chunk if row[0] == chunk[0][0]]
    return chunk


def _run_chunk(pipeline, backbone, sampler, requests, params, chunk, progress, done, total) -> list[GeneratedSample]:
    from generation.loop import sample_batch

    first = requests[0]
    prompts = [
        build_prompts(requests[number].prompt_template, first.concept_token, first.superclass) for number, _ in chunk
    ]
    seeds = [seed_for(requests[number].prompt_template, index) for number, index in chunk]

    def on_step(step: int) -> None:
        if progress is not None:
            progress(done, total, step, first.steps)

    began = time.perf_counter()
    result = sample_batch(pipeline, sampler, prompts, seeds, steps=first.steps, on_step=on_step, speed=first.speed)
    share = (time.perf_counter() - began) / len(chunk)
    denoiser = backbone.denoiser
    samples = []
    for offset, ((number, index), seed, prompt_set) in enumerate(zip(chunk, seeds, prompts, strict=True)):
        request = requests[number]
        samples.append(
            GeneratedSample(
                seed_index=index,
                seed=seed,
                image=result.images[offset],
                prompt=prompt_set.concept,
                superclass_prompt=prompt_set.superclass,
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
                device=str(denoiser.device),
                dtype=str(denoiser.dtype).removeprefix("torch."),
                prompt_truncated=result.prompt_truncated,
                backbone=backbone.name,
            )
        )
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
