"""Photoswap: a concept trajectory borrows attention from a parallel superclass trajectory."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from generation import attention
from generation.errors import GenerationError
from generation.prompts import phrase_span
from generation.samplers.core import (
    CONCEPT,
    MAIN,
    SWAP,
    SWAP_SUPERCLASS,
    SWAP_UNCOND,
    UNCOND,
    GuidanceOutput,
    RunContext,
    RunHooks,
    Sampler,
    guidance_weight,
    guided,
    parameter,
    step_window,
)


@dataclass(frozen=True)
class PhotoswapParams:
    t_sf: int = step_window(5, "steps during which self-attention features are swapped in (t_SF)")
    t_cm: int = step_window(15, "steps during which cross-attention maps are swapped in (t_CM)")
    t_sm: int = step_window(20, "steps during which self-attention maps are swapped in (t_SM)")
    w_c: float = guidance_weight(7.0, "guidance of the concept trajectory")
    w_s: float = guidance_weight(7.0, "guidance of the superclass trajectory")
    align_tokens: bool = parameter(
        True, "map cross-attention columns by template position (false: copy index by index, as the reference code)"
    )


@dataclass(frozen=True)
class SwapFlags:
    """Which Photoswap attention swaps are active at one step."""

    self_features: bool
    self_maps: bool
    cross_maps: bool

    @property
    def any(self) -> bool:
        return self.self_features or self.self_maps or self.cross_maps


class PhotoswapSampler(Sampler):
    """Photoswap (Gu et al., arXiv 2305.18286) as a personalized sampler in Soboleva et al. (arXiv 2502.05895).

    Both trajectories start from the same noise; each step evaluates [u on x^c | p_c on x^c | u on x^s |
    p_s on x^s]. In the concept branch, self-attention features (i < t_SF), self-attention maps
    (i < t_SM) and cross-attention maps (i < t_CM) are replaced by the superclass branch's. Guidance:
    eps^c = eps_u^c + w_c (eps_c - eps_u^c), eps^s = eps_u^s + w_s (eps_s - eps_u^s). Cross-attention
    columns are mapped by template position, so the extra concept token does not shift later tokens.
    SD-2 defaults t_SF = 5, t_CM = 15, t_SM = 20, w_c = w_s = 7; with all windows 0 the concept
    trajectory is Base. 4 evaluations per step.
    """

    name = "photoswap"
    Params = PhotoswapParams
    summary = "Attention swapping from a parallel superclass trajectory into the concept trajectory."
    equation = (
        "eps^c = eps_u^c + w_c (eps_c - eps_u^c), eps^s = eps_u^s + w_s (eps_s - eps_u^s); "
        "concept branch takes self-attention features (i < t_SF), self-attention maps (i < t_SM) and "
        "cross-attention maps (i < t_CM) from the superclass branch"
    )
    cost = "4 per step"
    sweep_preset = [
        {"t_sf": t_sf, "t_cm": t_cm, "t_sm": t_sm}
        for t_sf, t_cm, t_sm in ((0, 10, 10), (5, 15, 20), (5, 20, 25), (10, 25, 30))
    ]
    trajectories = (MAIN, SWAP)

    def branches(self, step):
        return (UNCOND, CONCEPT, SWAP_UNCOND, SWAP_SUPERCLASS)

    def swap_flags(self, step: int) -> SwapFlags:
        p = self.params
        return SwapFlags(self_features=step < p.t_sf, self_maps=step < p.t_sm, cross_maps=step < p.t_cm)

    def run_hooks(self, run: RunContext) -> RunHooks:
        return _AttentionSwap(self, run)

    def combine(self, step, preds, mask=None):
        p = self.params
        return GuidanceOutput(
            eps=guided(preds[UNCOND], preds[CONCEPT], p.w_c),
            branch_preds=preds,
            swap_eps=guided(preds[SWAP_UNCOND], preds[SWAP_SUPERCLASS], p.w_s),
        )


class _AttentionSwap(RunHooks):
    """Installs the swapping processor on every attention layer and tells it, per call, what to swap."""

    def __init__(self, sampler: PhotoswapSampler, run: RunContext):
        self.sampler, self.run = sampler, run
        processors = run.unet.attn_processors.values()
        if any("CustomDiffusion" in type(p).__name__ for p in processors):
            raise GenerationError(
                "photoswap: this UNet runs Custom Diffusion attention processors, whose trained projections "
                "Photoswap would silently drop; load the weights with generation.pipelines.load_pipeline, "
                "which fuses them into the attention layers"
            )
        self.state = attention.SwapState()
        if sampler.params.align_tokens:
            tokenizer, prompts = run.tokenizer, run.prompts
            concept_span = phrase_span(tokenizer, prompts.template, prompts.concept_phrase)
            superclass_span = phrase_span(tokenizer, prompts.template, prompts.superclass_phrase)
            length = run.embeds[CONCEPT].shape[1]
            self.state.token_map = attention.token_map(length, concept_span, superclass_span, device=run.device)

    @contextlib.contextmanager
    def installed(self):
        with attention.installed_processors(self.run.unet, lambda name, proc: attention.PhotoswapProcessor(self.state)):
            yield

    def before_call(self, step, branches):
        flags = self.sampler.swap_flags(step)
        self.state.self_features = flags.self_features
        self.state.self_maps = flags.self_maps
        self.state.cross_maps = flags.cross_maps
        self.state.concept_rows = self.run.rows(branches, CONCEPT)
        self.state.superclass_rows = self.run.rows(branches, SWAP_SUPERCLASS)
