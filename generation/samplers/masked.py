"""Masked: Mixed guidance inside the superclass word's cross-attention mask, superclass guidance outside."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from generation import attention
from generation.errors import ParameterError, PromptError
from generation.prompts import phrase_span
from generation.samplers.core import (
    CONCEPT,
    SUPERCLASS,
    GuidanceOutput,
    RunContext,
    RunHooks,
    Sampler,
    guidance_weight,
    optional_guidance_weight,
    parameter,
    step_window,
    weighted_branches,
    weighted_guidance,
    window_schedule,
)


@dataclass(frozen=True)
class MaskedParams:
    t_sw: int = step_window(
        3, "number of initial steps (of window_steps) that use (w_c0, w_s0) everywhere, before the mask applies"
    )
    w_c0: float = guidance_weight(0.0, "concept guidance during the first t_sw steps (w_c^0)")
    w_s0: float = guidance_weight(7.0, "superclass guidance during the first t_sw steps (w_s^0)")
    w_c: float = guidance_weight(3.5, "concept guidance inside the mask")
    w_s: float = guidance_weight(3.5, "superclass guidance inside the mask")
    w: float | None = optional_guidance_weight("superclass guidance outside the mask; null: w_c + w_s, as eq. (10)")
    q: float = parameter(0.7, "quantile of the attention map above which a latent pixel is in the mask", 0.0, 1.0)
    window_steps: int = window_schedule()


class MaskedSampler(Sampler):
    """Masked sampling, equation (10) of Soboleva et al. (arXiv 2502.05895).

    i < t_sw:  eps = eps_u + w_c^0 (eps_c - eps_u) + w_s^0 (eps_s - eps_u) everywhere;
    i >= t_sw: eps = M [eps_u + w_c (eps_c - eps_u) + w_s (eps_s - eps_u)] + (1 - M) [eps_u + w (eps_s - eps_u)],

    where M marks the latent pixels whose superclass-word cross-attention A (superclass branch, averaged
    over heads and layers, same forward pass) is at or above its q-quantile, and w = w_c + w_s unless
    set (eq. (10) and the reference code). SD-2 defaults t_sw = 3 of 50 steps, (w_c^0, w_s^0) = (0, 7),
    w_c = w_s = 3.5, q = 0.7. With t_sw = 0 and q = 0 (an all-ones mask) it is Mixed. The reference code
    switches the inside expression to eps_u + w (eps_c - eps_u) when w_c or w_s is zero; this one keeps
    the equation as written. 3 evaluations per step; before t_sw a zero w_c^0 or w_s^0 skips its
    branch, and after it a zero w_c skips the concept branch (the superclass branch gives the mask).
    """

    name = "masked"
    Params = MaskedParams
    summary = "Mixed guidance inside the superclass word's cross-attention mask, superclass guidance outside."
    equation = (
        "i < t_sw: eps = eps_u + w_c0 (eps_c - eps_u) + w_s0 (eps_s - eps_u); "
        "i >= t_sw: eps = M [eps_u + w_c (eps_c - eps_u) + w_s (eps_s - eps_u)] + (1 - M)[eps_u + w (eps_s - eps_u)], "
        "M = A >= quantile_q(A), w = w_c + w_s unless set"
    )
    cost = "3 per step (2 before t_sw with the default w_c0 = 0)"
    # The paper's Section 4 grid.
    sweep_preset = [{"q": q} for q in (0.3, 0.5, 0.7, 0.9)]

    @property
    def outside_weight(self) -> float:
        p = self.params
        return p.w_c + p.w_s if p.w is None else p.w

    def needs_mask(self, step: int) -> bool:
        """Whether step i's combine needs the cross-attention mask."""
        return step >= self.params.t_sw

    def needed_branches(self, step):
        p = self.params
        if not self.needs_mask(step):
            return weighted_branches({CONCEPT: p.w_c0, SUPERCLASS: p.w_s0})
        return weighted_branches({CONCEPT: p.w_c, SUPERCLASS: 1.0})  # the mask comes from the superclass branch

    def run_hooks(self, run: RunContext) -> RunHooks:
        return _MaskCapture(self, run)

    def combine(self, step, preds, mask=None):
        p = self.params
        if not self.needs_mask(step):
            return GuidanceOutput(weighted_guidance(preds, {CONCEPT: p.w_c0, SUPERCLASS: p.w_s0}), preds)
        if mask is None:
            raise ParameterError(f"masked: step {step}: expected a mask for steps >= t_sw={p.t_sw}, got None")
        inside = weighted_guidance(preds, {CONCEPT: p.w_c, SUPERCLASS: p.w_s})
        outside = weighted_guidance(preds, {SUPERCLASS: self.outside_weight})
        return GuidanceOutput(mask * inside + (1 - mask) * outside, preds)


def quantile_mask(attention_map, q: float):
    """Binary mask (N, 1, h, w): pixels whose attention is at or above the per-image q-quantile.

    ``>=`` (the reference code uses ``>``) makes q = 0 an all-ones mask; for q > 0 the two differ only
    where a value equals the interpolated quantile exactly.
    """
    import torch

    flat = attention_map.flatten(1).float()
    threshold = torch.quantile(flat, q, dim=1, keepdim=True)
    return (flat >= threshold).view(attention_map.shape)[:, None]


class _MaskCapture(RunHooks):
    """Records the superclass word's cross-attention in the superclass branch and thresholds it into M."""

    def __init__(self, sampler: MaskedSampler, run: RunContext):
        self.sampler, self.run = sampler, run
        tokenizer = run.tokenizer
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

    def before_call(self, step, branches):
        if self.sampler.needs_mask(step):
            self.recorder.start(self.run.rows(branches, SUPERCLASS), self.columns)
        else:
            self.recorder.stop()

    def mask(self, step):
        if not self.sampler.needs_mask(step):
            return None
        self.last_mask = quantile_mask(self.recorder.average, self.sampler.params.q)
        return self.last_mask.to(self.run.dtype)

    def final_mask(self):
        return self.last_mask
