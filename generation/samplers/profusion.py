"""ProFusion: fusion (refine) iterations on the concept prompt before each Mixed step."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from generation.errors import GenerationError
from generation.samplers.core import (
    CONCEPT,
    MAIN,
    SUPERCLASS,
    UNCOND,
    GuidanceOutput,
    RunContext,
    RunHooks,
    Sampler,
    guidance_weight,
    parameter,
    weighted_branches,
    weighted_guidance,
)


@dataclass(frozen=True)
class ProfusionParams:
    w_c: float = guidance_weight(3.5, "concept guidance of the main step")
    w_s: float = guidance_weight(3.5, "superclass guidance of the main step")
    refine_steps: int = parameter(1, "fusion (refine) iterations per step, R", 0, 10)
    r: float = parameter(1.0, "refinement intensity: noise scale relative to the DDIM variance", 0.0, 1.0)
    w_r: float = guidance_weight(7.0, "concept guidance inside the refinement")
    refine_seed: int = parameter(10, "offset of the refinement noise seed from the image seed", 0, 2**31 - 1)


class ProfusionSampler(Sampler):
    """ProFusion's fusion sampling (Zhou et al., arXiv 2305.13579) with a Mixed main step, as in Soboleva et al.

    Before each main step, R refinement iterations evaluate [uncond | concept], form
    eps~ = eps_u + w_r (eps_c - eps_u), take a stochastic DDIM step to the previous timestep with
    sigma = r sqrt(var(t, t_prev)) and re-noise back to t in closed form (``refine_latents``). The
    main step is Mixed: eps = eps_u + w_c (eps_c - eps_u) + w_s (eps_s - eps_u). The documented SD-2
    example is w_c = w_s = 3.5, R = 1, r = 1, w_r = 7. With r = 0 the refinement is the identity, so
    the sampler is Mixed and its refinement calls are skipped. 3 + 2R evaluations per step (3 at r = 0;
    zero weights skip their branches as in Mixed).
    """

    name = "profusion"
    Params = ProfusionParams
    summary = "ProFusion's fusion (refine) iterations before each Mixed step."
    equation = (
        "refine: eps~ = eps_u + w_r (eps_c - eps_u), x_t <- x_t - eps~ s^2 sqrt(1 - a_t)/(1 - a_p) "
        "+ s z sqrt((1 - a_t)(2 - 2 a_p - s^2))/(1 - a_p), s = r sqrt(var(t, t_prev)); "
        "main: eps = eps_u + w_c (eps_c - eps_u) + w_s (eps_s - eps_u)"
    )
    cost = "3 + 2 R per step (3 at r = 0)"
    # This project's grid: the paper's r list is in neither its reference code nor any readable copy of its
    # text (docs/generation.md, "Sweep presets", names every place searched). r = 0 is Mixed, r = 1 the
    # reference code's documented example.
    sweep_preset = [{"r": r, "refine_steps": 1} for r in (0.0, 0.25, 0.5, 0.75, 1.0)]

    def weights(self, step):
        return {CONCEPT: self.params.w_c, SUPERCLASS: self.params.w_s}

    def refine_iterations(self, step: int) -> int:
        """R: the fusion iterations before step i's main call; none at r = 0, where each is the identity."""
        if not self.params.r and not self.paper_batching:
            return 0
        return self.params.refine_steps

    def refine_weights(self, step: int) -> dict[str, float]:
        return {CONCEPT: self.params.w_r}

    def refine_branches(self, step: int) -> tuple[str, ...]:
        return (UNCOND, CONCEPT) if self.paper_batching else weighted_branches(self.refine_weights(step))

    def refine_combine(self, step: int, preds: Mapping[str, Any]) -> GuidanceOutput:
        return GuidanceOutput(weighted_guidance(preds, self.refine_weights(step)), preds)

    def extra_evaluations(self, step):
        return self.refine_iterations(step) * len(self.refine_branches(step))

    def run_hooks(self, run: RunContext) -> RunHooks:
        return _Fusion(self, run)


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


class _Fusion(RunHooks):
    """The refinement calls on the main trajectory, with noise drawn per image from its own CPU generator.

    Each generator is seeded with the image seed + ``refine_seed``, so the noise, like the initial
    latents, does not depend on the batch.
    """

    def __init__(self, sampler: ProfusionSampler, run: RunContext):
        import torch

        self.sampler, self.run = sampler, run
        offset = sampler.params.refine_seed
        self.generators = [torch.Generator("cpu").manual_seed((seed + offset) % 2**63) for seed in run.seeds]

    def before_step(self, step, timestep):
        iterations = self.sampler.refine_iterations(step)
        if not iterations:
            return
        import torch

        run = self.run
        alpha_t, alpha_prev = run.alphas(timestep)
        for _ in range(iterations):
            preds = run.call_unet(self.sampler.refine_branches(step), timestep)
            latents = run.trajectories[MAIN]
            eps = to_epsilon(self.sampler.refine_combine(step, preds).eps, latents, alpha_t, run.prediction_type)
            image_shape = (1, *latents.shape[1:])
            noise = torch.cat([torch.randn(image_shape, generator=g) for g in self.generators])
            noise = noise.to(run.device, run.dtype)
            run.trajectories[MAIN] = refine_latents(latents, eps, noise, alpha_t, alpha_prev, self.sampler.params.r)
