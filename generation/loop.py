"""The one denoising loop every sampler runs on.

Per step: let the sampler's run hooks make any extra model calls (ProFusion's fusion), ask the sampler
which branches it needs, concatenate exactly those inputs along the batch axis, make one UNet call,
split the output by branch, let the sampler combine, take a DDIM step (eta = 0) on every trajectory
the step produced a prediction for. Attention processors (Masked, Photoswap) are the hooks' business:
the loop installs them for the run and tells them each call's batch layout, without knowing which
sampler it runs (``generation.samplers.core`` describes the protocol). How prompts condition the
denoiser and how it is called is the backbone's business (``generation.backbones``: SD, SD-XL,
PixArt-alpha), and a batch may hold one prompt set or one per image. Initial noise is drawn per image
on a CPU generator seeded by ``generation.seeds.seed_for``, so an image does not depend on its batch,
its batch size or the device.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from generation.backbones import Conditioning, backbone_of
from generation.errors import MixedPromptsError
from generation.prompts import PromptSet
from generation.samplers.core import BRANCH_INPUTS, CONCEPT, MAIN, SUPERCLASS, UNCOND, Sampler
from generation.speed import SpeedOptions, denoiser_call
from generation.steps import check_steps

LATENT_CHANNELS = 4

# Masked and Photoswap swap the UNet's attention processors for a run, so two threads must not run
# on the same (cached, shared) pipeline at once.
_RUN_LOCKS: dict[int, threading.Lock] = {}
_RUN_LOCKS_GUARD = threading.Lock()


def _run_lock(pipeline) -> threading.Lock:
    with _RUN_LOCKS_GUARD:
        return _RUN_LOCKS.setdefault(id(backbone_of(pipeline).denoiser), threading.Lock())


@dataclass
class BatchResult:
    """What one batch of images produced; counts are per image."""

    images: list
    latents: Any
    unet_evaluations: int
    masks: list = field(default_factory=list)
    prompt_truncated: bool = False


def initial_latents(seeds: Sequence[int], latent_size: tuple[int, int], channels: int = LATENT_CHANNELS):
    """Standard normal latents, one CPU generator per seed, float32, shape (N, channels, h, w)."""
    import torch

    generators = [torch.Generator("cpu").manual_seed(seed) for seed in seeds]
    return torch.cat([torch.randn((1, channels, *latent_size), generator=g) for g in generators])


def _row_prompts(prompts, rows: int) -> list[PromptSet]:
    if isinstance(prompts, PromptSet):
        return [prompts] * rows
    prompts = list(prompts)
    if len(prompts) != rows:
        raise ValueError(f"prompts: expected one prompt set per seed ({rows}), got {len(prompts)}")
    return prompts


def encode_prompts(pipeline, prompts: PromptSet) -> tuple[dict[str, Any], bool]:
    """Text embeddings (1, tokens, width) for "uncond", "concept" and "superclass", and whether any
    prompt was longer than the tokenizer allows (it is then truncated, and logged)."""
    conditioning, truncated = _encode_rows(backbone_of(pipeline), [prompts])
    return {name: rows.hidden for name, rows in conditioning.items()}, truncated


def _encode_rows(backbone, row_prompts: Sequence[PromptSet]) -> tuple[dict[str, Conditioning], bool]:
    """Per prompt name, the conditioning of every row (one row when all rows share their prompts)."""
    texts = {name: [getattr(prompts, name) for prompts in row_prompts] for name in _PROMPT_NAMES}
    encoded = backbone.encode([text for column in texts.values() for text in column])
    conditioning = {}
    for name, column in texts.items():
        if len(set(column)) == 1:
            conditioning[name] = encoded.conditioning[column[0]]
        else:
            conditioning[name] = Conditioning.concat([encoded.conditioning[text] for text in column])
    return conditioning, encoded.truncated


_PROMPT_NAMES = (UNCOND, CONCEPT, SUPERCLASS)  # PromptSet attributes, named like the branches


class _Run:
    """State of one batch: the trajectories, embeddings and the scheduler copy (a ``RunContext``)."""

    def __init__(self, pipeline, sampler: Sampler, prompts, seeds: Sequence[int], steps: int, speed: SpeedOptions):
        from diffusers import DDIMScheduler

        backbone = backbone_of(pipeline)
        self.backbone, self.speed = backbone, speed
        self.unet, self.tokenizer, self.seeds = backbone.denoiser, backbone.tokenizer, list(seeds)
        self.row_prompts = _row_prompts(prompts, len(self.seeds))
        self.own_processors = dict(self.unet.attn_processors)  # before any sampler installs its own
        self._denoise = None
        self.device, self.dtype = self.unet.device, self.unet.dtype
        self.scheduler = DDIMScheduler.from_config(pipeline.scheduler.config)
        self.scheduler.set_timesteps(steps, device=self.device)
        self.steps = steps
        self.latent_size = backbone.latent_size
        self.conditioning, self.truncated = _encode_rows(backbone, self.row_prompts)
        self.embeds = {name: rows.hidden for name, rows in self.conditioning.items()}
        latents = initial_latents(self.seeds, self.latent_size, backbone.latent_channels).to(self.device, self.dtype)
        latents = latents * self.scheduler.init_noise_sigma
        # Every trajectory starts from the same noise.
        self.trajectories = {name: latents if name == MAIN else latents.clone() for name in sampler.trajectories}
        self.evaluations = 0

    @property
    def prompts(self) -> PromptSet:
        """The batch's one prompt set; samplers whose hooks read token positions need a single one."""
        distinct = list(dict.fromkeys(self.row_prompts))
        if len(distinct) > 1:
            raise MixedPromptsError(
                f"this sampler reads token positions of one prompt per batch, got {len(distinct)} prompts in one batch"
            )
        return distinct[0]

    @property
    def batch(self) -> int:
        return len(self.seeds)

    @property
    def prediction_type(self) -> str:
        return self.scheduler.config.prediction_type

    def rows(self, branches: tuple[str, ...], branch: str) -> slice:
        index = branches.index(branch)
        return slice(index * self.batch, (index + 1) * self.batch)

    def call_unet(self, branches: tuple[str, ...], timestep) -> dict[str, Any]:
        """One UNet call over the given branches; returns each branch's noise prediction."""
        import torch

        inputs = [self.trajectories[BRANCH_INPUTS[b][0]] for b in branches]
        conditioning = Conditioning.concat([self.conditioning[BRANCH_INPUTS[b][1]].rows(self.batch) for b in branches])
        latents = self.scheduler.scale_model_input(torch.cat(inputs), timestep)
        if self._denoise is None:  # chosen at the first call, once the sampler's processors are in place
            self._denoise = denoiser_call(self.backbone, self.speed, self.own_processors)
        output = self._denoise(latents, timestep, conditioning)
        self.evaluations += len(branches)
        return dict(zip(branches, output.chunk(len(branches)), strict=True))

    def alphas(self, timestep) -> tuple[float, float]:
        scheduler = self.scheduler
        t = int(timestep)
        previous = t - scheduler.config.num_train_timesteps // self.steps
        alpha_t = float(scheduler.alphas_cumprod[t])
        alpha_prev = scheduler.alphas_cumprod[previous] if previous >= 0 else scheduler.final_alpha_cumprod
        return alpha_t, float(alpha_prev)

    def step(self, trajectory: str, eps, timestep) -> None:
        latents = self.trajectories[trajectory]
        self.trajectories[trajectory] = self.scheduler.step(eps, timestep, latents).prev_sample


def sample_batch(
    pipeline,
    sampler: Sampler,
    prompts: PromptSet | Sequence[PromptSet],
    seeds: Sequence[int],
    *,
    steps: int = 50,
    on_step: Callable[[int], None] | None = None,
    speed: SpeedOptions | None = None,
) -> BatchResult:
    """Denoise one batch (one image per seed) with ``sampler`` and decode it.

    ``prompts`` is one prompt set for the whole batch or one per seed (several prompts of a concept in
    one call); ``speed`` turns on GPU speed paths (``generation.speed``).
    """
    import torch

    check_steps(steps)
    sampler = sampler.for_steps(steps)  # step windows count steps of the sampler's schedule, not of this run
    with _run_lock(pipeline), torch.inference_mode():
        run = _Run(pipeline, sampler, prompts, seeds, steps, speed or SpeedOptions())
        hooks = sampler.run_hooks(run)
        with hooks.installed():
            for step, timestep in enumerate(run.scheduler.timesteps):
                hooks.before_step(step, timestep)
                branches = sampler.branches(step)
                hooks.before_call(step, branches)
                preds = run.call_unet(branches, timestep)
                guidance = sampler.combine(step, preds, mask=hooks.mask(step))
                for trajectory, eps in guidance.by_trajectory().items():
                    run.step(trajectory, eps, timestep)
                if on_step is not None:
                    on_step(step + 1)
        latents = run.trajectories[MAIN]
        images = decode(pipeline, latents)
        final_mask = hooks.final_mask()
        masks = _mask_images(final_mask, images) if final_mask is not None else []
    return BatchResult(
        images=images,
        latents=latents,
        unet_evaluations=run.evaluations,
        masks=masks,
        prompt_truncated=run.truncated,
    )


def decode(pipeline, latents) -> list:
    """VAE-decode latents into PIL images."""
    return backbone_of(pipeline).decode(latents)


def _mask_images(mask, images) -> list:
    """One black-and-white PIL image per (N, 1, h, w) mask row, resized to its image."""
    from PIL import Image

    out = []
    for single, image in zip(mask[:, 0].to("cpu"), images, strict=True):
        pixels = single.numpy().astype("uint8") * 255
        out.append(Image.fromarray(pixels).resize(image.size, Image.NEAREST))
    return out
