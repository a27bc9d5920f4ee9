"""Mixed: concept and superclass guidance added at every step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from generation.samplers.core import CONCEPT, SUPERCLASS, Sampler, guidance_weight


def mixed_guidance(uncond: Any, concept: Any, superclass: Any, w_c: float, w_s: float) -> Any:
    """The Mixed combination: eps_u + w_c (eps_c - eps_u) + w_s (eps_s - eps_u)."""
    return uncond + w_c * (concept - uncond) + w_s * (superclass - uncond)


@dataclass(frozen=True)
class MixedParams:
    w_c: float = guidance_weight(3.5, "guidance scale of the concept prompt")
    w_s: float = guidance_weight(3.5, "guidance scale of the superclass prompt")


class MixedSampler(Sampler):
    """Mixed sampling of Soboleva et al. (arXiv 2502.05895), at every step:

    eps = eps_u + w_c (eps_c - eps_u) + w_s (eps_s - eps_u),

    with eps_u, eps_c and eps_s the unconditional, concept-prompt and superclass-prompt predictions at
    the same x_t, all from the fine-tuned model. SD-2 defaults w_c = w_s = 3.5 keep Base's total of 7;
    w_s = 0 is Base. 3 evaluations per step, in one batched call; 2 when w_c or w_s is 0 (the branch of a
    zero weight is not evaluated).
    """

    name = "mixed"
    Params = MixedParams
    summary = "Concept and superclass guidance added at every step."
    equation = "eps = eps_u + w_c (eps_c - eps_u) + w_s (eps_s - eps_u)"
    cost = "3 per step (2 when w_c or w_s is 0)"
    # The total guidance stays 7.0 (the SD-2 Base scale) while it moves from concept to superclass.
    sweep_preset = [{"w_s": w_s, "w_c": 7.0 - w_s} for w_s in (0.0, 1.0, 2.0, 3.0, 3.5, 4.0, 5.0, 6.0, 7.0)]

    def weights(self, step):
        return {CONCEPT: self.params.w_c, SUPERCLASS: self.params.w_s}
