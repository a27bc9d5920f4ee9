"""The one denoising loop every sampler runs on.

Per step: ask the sampler which branches it needs, concatenate exactly those inputs along the batch
axis, make one UNet call, split the output by branch, let the sampler combine, take a DDIM step
(eta = 0). ProFusion adds its refinement calls before the main call; Masked and Photoswap install
attention processors for the run. Initial noise is drawn per image on a CPU generator seeded by
``generation.seeds.seed_for``, so an image does not depend on its batch, its batch size or the device.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from generation import attention
from generation.errors import GenerationError, PromptError
from generation.prompts import PromptSet, phrase_span, token_count
from generation.samplers import (
    BRANCH_INPUTS,
    CONCEPT,
    SUPERCLASS,
    SWAP_SUPERCLASS,
    MaskedSampler,
    PhotoswapSampler,
    Sampler,
)

logger = logging.getLogger(__name__)

LATENT_CHANNELS = 4

# Masked and Photoswap swap the UNet's attention processors for a run, so two threads must not run
# on the same (cached, shared) pipeline at once.
_RUN_LOCKS: dict[int, threading.Lock] = {}
_RUN_LOCKS_GUARD = threading.Lock()


def _run_lock(pipeline) -> threading.Lock:
    with _RUN_LOCKS_GUARD:
        return _RUN_LOCKS.setdefault(id(pipeline.unet), threading.Lock())


@dataclass
class BatchResult:
    """What one batch of images produced; counts are per image."""

    images: list
    latents: Any
    unet_evaluations: int
    masks: list = field(default_factory=list)
    prompt_truncated: bool = False


def initial_latents(seeds: Sequence[int], latent_size: tuple[int, int]):
    """Standard normal latents, one CPU generator per seed, float32, shape (N, 4, h, w)."""
    import torch

    generators = [torch.Generator("cpu").manual_seed(seed) for seed in seeds]
    return torch.cat([torch.randn((1, LATENT_CHANNELS, *latent_size), generator=g) for g in generators])


def encode_prompts(pipeline, prompts: PromptSet) -> tuple[dict[str, Any], bool]:
    """Text embeddings (1, tokens, width) for "uncond", "concept" and "superclass", and whether any
    prompt was longer than the tokenizer allows (it is then truncated, and logged)."""
    import torch

    tokenizer, encoder = pipeline.tokenizer, pipeline.text_encoder
    limit = tokenizer.model_max_length
    texts = {"uncond": prompts.uncond, "concept": prompts.concept, "superclass": prompts.superclass}
    truncated = False
    for name, text in texts.items():
        if token_count(tokenizer, text) > limit:
            truncated = True
            count = token_count(tokenizer, text)
            logger.warning("%s prompt %r has %d tokens; truncated to %d", name, text, count, limit)
    ids = tokenizer(list(texts.values()), padding="max_length", max_length=limit, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = encoder(ids.input_ids.to(encoder.device))[0]
    return {name: hidden[i : i + 1] for i, name in enumerate(texts)}, truncated


def to_epsilon(prediction, latents, alpha_prod: float, prediction_type: str):
    """Convert a model output to a noise prediction (epsilon, v_prediction or sample)."""
    if prediction_type == "epsilon":
        return prediction
    if prediction_type == "v_prediction":
        return alpha_prod**0.5 * prediction + (1 - alpha_prod) ** 0.5 * latents
    if prediction_type == "sample":
        return (latents - alpha_prod**0.5 * prediction) / (1 - alpha_prod) ** 0.5
    raise GenerationError(
        f"scheduler prediction_type: expected epsilon, v_prediction or sample, got {prediction_type!r}"
    )


def refine_latents(latents, eps, noise, alpha_t: float, alpha_prev: float, intensity: float):
    """ProFusion's fusion step in closed form: a stochastic DDIM step to t_prev, re-noised back to t.

    var = (1 - a_p)/(1 - a_t) (1 - a_t/a_p), s = r sqrt(var),
    x_t <- x_t - eps s^2 sqrt(1 - a_t)/(1 - a_p) + s z sqrt((1 - a_t)(2 - 2 a_p - s^2))/(1 - a_p).
    """
    variance = (1 - alpha_prev) / (1 - alpha_t) * (1 - alpha_t / alpha_prev)
    sigma = intensity * variance**0.5
    drift = sigma**2 * (1 - alpha_t) ** 0.5 / (1 - alpha_prev)
    spread = sigma * ((1 - alpha_t) * (2 - 2 * alpha_prev - sigma**2)) ** 0.5 / (1 - alpha_prev)
    return latents - drift * eps + spread * noise


def quantile_mask(attention_map, q: float):
    """Binary mask (N, 1, h, w): pixels whose attention is at or above the per-image q-quantile.

    ``>=`` (the reference code uses ``>``) makes q = 0 an all-ones mask; for q > 0 the two differ only
    where a value equals the interpolated quantile exactly.
    """
    import torch

    flat = attention_map.flatten(1).float()
    threshold = torch.quantile(flat, q, dim=1, keepdim=True)
    return (flat >= threshold).view(attention_map.shape)[:, None]


class _Run:
    """State of one batch: the trajectories, embeddings and the scheduler copy."""

    def __init__(self, pipeline, sampler: Sampler, prompts: PromptSet, seeds: Sequence[int], steps: int):
        from diffusers import DDIMScheduler

        self.pipeline, self.sampler, self.prompts, self.seeds = pipeline, sampler, prompts, list(seeds)
        self.unet = pipeline.unet
        self.device, self.dtype = self.unet.device, self.unet.dtype
        self.scheduler = DDIMScheduler.from_config(pipeline.scheduler.config)
        self.scheduler.set_timesteps(steps, device=self.device)
        self.steps = steps
        size = self.unet.config.sample_size
        self.latent_size = (size, size) if isinstance(size, int) else tuple(size)
        self.embeds, self.truncated = encode_prompts(pipeline, prompts)
        latents = initial_latents(self.seeds, self.latent_size).to(self.device, self.dtype)
        latents = latents * self.scheduler.init_noise_sigma
        self.trajectories = {"main": latents}
        if isinstance(sampler, PhotoswapSampler):
            self.trajectories["swap"] = latents.clone()
        self.evaluations = 0

    @property
    def batch(self) -> int:
        return len(self.seeds)

    def rows(self, branches: tuple[str, ...], branch: str) -> slice:
        index = branches.index(branch)
        return slice(index * self.batch, (index + 1) * self.batch)

    def call_unet(self, branches: tuple[str, ...], timestep) -> dict[str, Any]:
        """One UNet call over the given branches; returns each branch's noise prediction."""
        import torch

        inputs = [self.trajectories[BRANCH_INPUTS[b][0]] for b in branches]
        contexts = [self.embeds[BRANCH_INPUTS[b][1]].expand(self.batch, -1, -1) for b in branches]
        latents = self.scheduler.scale_model_input(torch.cat(inputs), timestep)
        output = self.unet(latents, timestep, encoder_hidden_states=torch.cat(contexts)).sample
        self.evaluations += len(branches)
        return dict(zip(branches, output.chunk(len(branches))))

    def alphas(self, timestep) -> tuple[float, float]:
        scheduler = self.scheduler
        t = int(timestep)
        previous = t - scheduler.config.num_train_timesteps // self.steps
        alpha_t = float(scheduler.alphas_cumprod[t])
        alpha_prev = scheduler.alphas_cumprod[previous] if previous >= 0 else scheduler.final_alpha_cumprod
        alpha_prev = float(alpha_prev)
        return alpha_t, alpha_prev


def _refine_generators(seeds: Sequence[int], offset: int):
    import torch

    return [torch.Generator("cpu").manual_seed((seed + offset) % 2**63) for seed in seeds]


def _refine(run: _Run, step: int, timestep, generators) -> None:
    """ProFusion's fusion iterations on the main trajectory (R calls on [uncond | concept])."""
    import torch

    sampler = run.sampler
    prediction_type = run.scheduler.config.prediction_type
    alpha_t, alpha_prev = run.alphas(timestep)
    for _ in range(sampler.refine_steps):
        preds = run.call_unet(sampler.refine_branches(step), timestep)
        latents = run.trajectories["main"]
        eps = to_epsilon(sampler.refine_combine(step, preds).eps, latents, alpha_t, prediction_type)
        noise = torch.cat([torch.randn((1, LATENT_CHANNELS, *run.latent_size), generator=g) for g in generators])
        noise = noise.to(run.device, run.dtype)
        run.trajectories["main"] = refine_latents(latents, eps, noise, alpha_t, alpha_prev, sampler.params.r)


class _MaskHook:
    """Masked: records the superclass word's cross-attention in the superclass branch."""

    def __init__(self, run: _Run):
        self.run = run
        tokenizer = run.pipeline.tokenizer
        start, stop = phrase_span(tokenizer, run.prompts.template, run.prompts.superclass_phrase)
        limit = tokenizer.model_max_length
        if start >= limit:
            raise PromptError(
                f"superclass prompt {run.prompts.superclass!r}: the superclass word is past token {limit}"
            )
        self.columns = list(range(start, min(stop, limit)))
        self.recorder = attention.AttentionRecorder(run.latent_size)
        self.last_mask = None

    @contextlib.contextmanager
    def installed(self):
        def capture(name, processor):
            return attention.ColumnCaptureProcessor(processor, self.recorder) if "attn2" in name else processor

        with attention.installed_processors(self.run.unet, capture):
            yield

    def before_call(self, step: int, branches: tuple[str, ...]) -> None:
        if self.run.sampler.needs_mask(step):
            self.recorder.start(self.run.rows(branches, SUPERCLASS), self.columns)
        else:
            self.recorder.stop()

    def mask(self, step: int):
        if not self.run.sampler.needs_mask(step):
            return None
        mask = quantile_mask(self.recorder.average, self.run.sampler.params.q)
        self.last_mask = mask
        return mask.to(self.run.dtype)


class _SwapHook:
    """Photoswap: installs the swapping processor on every attention layer."""

    last_mask = None

    def __init__(self, run: _Run):
        self.run = run
        processors = run.unet.attn_processors.values()
        if any("CustomDiffusion" in type(p).__name__ for p in processors):
            raise GenerationError(
                "photoswap: this UNet runs Custom Diffusion attention processors, whose trained projections "
                "Photoswap would silently drop; load the weights with generation.pipelines.load_pipeline, "
                "which fuses them into the attention layers"
            )
        self.state = attention.SwapState()
        if run.sampler.params.align_tokens:
            tokenizer = run.pipeline.tokenizer
            concept_span = phrase_span(tokenizer, run.prompts.template, run.prompts.concept_phrase)
            superclass_span = phrase_span(tokenizer, run.prompts.template, run.prompts.superclass_phrase)
            length = run.embeds["concept"].shape[1]
            self.state.token_map = attention.token_map(length, concept_span, superclass_span, device=run.device)

    @contextlib.contextmanager
    def installed(self):
        with attention.installed_processors(self.run.unet, lambda name, proc: attention.PhotoswapProcessor(self.state)):
            yield

    def before_call(self, step: int, branches: tuple[str, ...]) -> None:
        flags = self.run.sampler.swap_flags(step)
        self.state.self_features = flags.self_features
        self.state.self_maps = flags.self_maps
        self.state.cross_maps = flags.cross_maps
        self.state.concept_rows = self.run.rows(branches, CONCEPT)
        self.state.superclass_rows = self.run.rows(branches, SWAP_SUPERCLASS)

    def mask(self, step: int):
        return None


class _NoHook:
    last_mask = None

    def __init__(self, run: _Run):
        pass

    @contextlib.contextmanager
    def installed(self):
        yield

    def before_call(self, step, branches):
        pass

    def mask(self, step):
        return None


def _hook_for(run: _Run):
    if isinstance(run.sampler, MaskedSampler):
        return _MaskHook(run)
    if isinstance(run.sampler, PhotoswapSampler):
        return _SwapHook(run)
    return _NoHook(run)


def sample_batch(
    pipeline,
    sampler: Sampler,
    prompts: PromptSet,
    seeds: Sequence[int],
    *,
    steps: int = 50,
    on_step: Callable[[int], None] | None = None,
) -> BatchResult:
    """Denoise one batch (one image per seed) with ``sampler`` and decode it."""
    import torch

    if steps < 1:
        raise GenerationError(f"steps: expected an integer >= 1, got {steps}")
    with _run_lock(pipeline), torch.inference_mode():
        run = _Run(pipeline, sampler, prompts, seeds, steps)
        hook = _hook_for(run)
        generators = _refine_generators(run.seeds, sampler.params.refine_seed) if sampler.refine_steps else None
        with hook.installed():
            for step, timestep in enumerate(run.scheduler.timesteps):
                if sampler.refine_steps:
                    _refine(run, step, timestep, generators)
                branches = sampler.branches(step)
                hook.before_call(step, branches)
                preds = run.call_unet(branches, timestep)
                guidance = sampler.combine(step, preds, mask=hook.mask(step))
                main = run.scheduler.step(guidance.eps, timestep, run.trajectories["main"]).prev_sample
                run.trajectories["main"] = main
                if guidance.swap_eps is not None:
                    swap = run.scheduler.step(guidance.swap_eps, timestep, run.trajectories["swap"]).prev_sample
                    run.trajectories["swap"] = swap
                if on_step is not None:
                    on_step(step + 1)
        latents = run.trajectories["main"]
        images = decode(pipeline, latents)
        masks = _mask_images(hook.last_mask, images) if hook.last_mask is not None else []
    return BatchResult(
        images=images,
        latents=latents,
        unet_evaluations=run.evaluations,
        masks=masks,
        prompt_truncated=run.truncated,
    )


def decode(pipeline, latents) -> list:
    """VAE-decode latents into PIL images."""
    vae = pipeline.vae
    pixels = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor).sample
    return pipeline.image_processor.postprocess(pixels, output_type="pil")


def _mask_images(mask, images) -> list:
    from PIL import Image

    out = []
    for single, image in zip(mask[:, 0].to("cpu"), images):
        pixels = (single.numpy().astype("uint8") * 255)
        out.append(Image.fromarray(pixels).resize(image.size, Image.NEAREST))
    return out
