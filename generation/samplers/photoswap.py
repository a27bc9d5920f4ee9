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
    SUPERCLASS,
    SWAP,
    SWAP_SUPERCLASS,
    SWAP_UNCOND,
    UNCOND,
    GuidanceOutput,
    RunContext,
    RunHooks,
    Sampler,
    choice,
    guidance_weight,
    step_window,
    weighted_branches,
    weighted_guidance,
    window_schedule,
)

# How the superclass prompt's cross-attention columns map onto the concept prompt's.
INDEX = "index"  # column k gets column k, as the reference code copies them (shifted by one after "sks")
TEMPLATE = "template"  # by template position; the placeholder and the word share the word's map, renormalised
TOKEN_ALIGNMENTS = (INDEX, TEMPLATE)


@dataclass(frozen=True)
class PhotoswapParams:
    t_sf: int = step_window(5, "steps (of window_steps) during which self-attention features are swapped in (t_SF)")
    t_cm: int = step_window(15, "steps (of window_steps) during which cross-attention maps are swapped in (t_CM)")
    t_sm: int = step_window(20, "steps (of window_steps) during which self-attention maps are swapped in (t_SM)")
    w_c: float = guidance_weight(7.0, "guidance of the concept trajectory")
    w_s: float = guidance_weight(7.0, "guidance of the superclass trajectory")
    token_alignment: str = choice(
        INDEX,
        "how superclass cross-attention columns map onto the concept prompt: index (column by column, as the "
        "reference code) or template (by template position, placeholder and word share the word's map)",
        TOKEN_ALIGNMENTS,
    )
    window_steps: int = window_schedule()


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

    Both trajectories start from the same noise; while a swap window is open each step evaluates
    [u on x^c | p_c on x^c | u on x^s | p_s on x^s]. In the concept branch, self-attention features
    (i < t_SF), self-attention maps (i < t_SM) and cross-attention maps (i < t_CM) are replaced by the
    superclass branch's. Guidance: eps^c = eps_u^c + w_c (eps_c - eps_u^c), eps^s = eps_u^s + w_s
    (eps_s - eps_u^s). Cross-attention columns are copied index by index, as the reference code does,
    unless ``token_alignment`` says otherwise. SD-2 defaults t_SF = 5, t_CM = 15, t_SM = 20 of 50
    steps, w_c = w_s = 7; with all windows 0 the concept trajectory is Base. 4 evaluations per step
    while a window is open; after the last one the superclass trajectory has nothing left to give and
    is dropped, 2 per step (140 per image at 50 steps with the defaults, against the reference's 200).
    """

    name = "photoswap"
    Params = PhotoswapParams
    summary = "Attention swapping from a parallel superclass trajectory into the concept trajectory."
    equation = (
        "eps^c = eps_u^c + w_c (eps_c - eps_u^c), eps^s = eps_u^s + w_s (eps_s - eps_u^s); "
        "concept branch takes self-attention features (i < t_SF), self-attention maps (i < t_SM) and "
        "cross-attention maps (i < t_CM) from the superclass branch"
    )
    cost = "4 per step until the last swap window closes, then 2"
    # The paper's Section 4 grid of (t_SF, t_CM, t_SM).
    sweep_preset = [
        {"t_sf": t_sf, "t_cm": t_cm, "t_sm": t_sm} for t_sf, t_cm, t_sm in ((1, 10, 15), (5, 15, 20), (10, 20, 25))
    ]
    trajectories = (MAIN, SWAP)
    full_branches = (UNCOND, CONCEPT, SWAP_UNCOND, SWAP_SUPERCLASS)

    def swap_flags(self, step: int) -> SwapFlags:
        p = self.params
        return SwapFlags(self_features=step < p.t_sf, self_maps=step < p.t_sm, cross_maps=step < p.t_cm)

    def needed_branches(self, step):
        # The superclass trajectory only feeds the concept branch's attention, which a zero w_c ignores.
        if self.params.w_c and self.swap_flags(step).any:
            return self.full_branches
        return weighted_branches({CONCEPT: self.params.w_c})

    def run_hooks(self, run: RunContext) -> RunHooks:
        return _AttentionSwap(self, run)

    def combine(self, step, preds, mask=None):
        p = self.params
        swap_eps = None
        if SWAP_SUPERCLASS in preds:
            swap_eps = weighted_guidance(
                {UNCOND: preds[SWAP_UNCOND], SUPERCLASS: preds[SWAP_SUPERCLASS]}, {SUPERCLASS: p.w_s}
            )
        return GuidanceOutput(eps=weighted_guidance(preds, {CONCEPT: p.w_c}), branch_preds=preds, swap_eps=swap_eps)


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
        if sampler.params.token_alignment == TEMPLATE:
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
        if SWAP_SUPERCLASS not in branches or CONCEPT not in branches:
            flags = SwapFlags(self_features=False, self_maps=False, cross_maps=False)
        self.state.self_features = flags.self_features
        self.state.self_maps = flags.self_maps
        self.state.cross_maps = flags.cross_maps
        if flags.any:
            self.state.concept_rows = self.run.rows(branches, CONCEPT)
            self.state.superclass_rows = self.run.rows(branches, SWAP_SUPERCLASS)
