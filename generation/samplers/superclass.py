"""Superclass: classifier-free guidance on the superclass prompt ("a dog in the snow")."""

from __future__ import annotations

from dataclasses import dataclass

from generation.samplers.core import SUPERCLASS, UNCOND, Sampler, guidance_weight


@dataclass(frozen=True)
class SuperclassParams:
    w: float = guidance_weight(7.0, "guidance scale on the superclass prompt")


class SuperclassSampler(Sampler):
    """Superclass sampling of Soboleva et al. (arXiv 2502.05895): eps = eps_u + w (eps_s - eps_u).

    The fine-tuned model, prompted without the concept token: eps_s is the superclass-prompt
    prediction. w = 7 on SD-2. 2 evaluations per step.
    """

    name = "superclass"
    Params = SuperclassParams
    summary = "Classifier-free guidance on the superclass prompt (the fine-tuned model, without the concept token)."
    equation = "eps = eps_u + w (eps_s - eps_u)"
    cost = "2 per step"
    sweep_preset = [{"w": w} for w in (3.0, 5.0, 7.0, 9.0)]
    full_branches = (UNCOND, SUPERCLASS)

    def weights(self, step):
        return {SUPERCLASS: self.params.w}
