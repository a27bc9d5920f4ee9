"""Base: classifier-free guidance on the concept prompt ("a sks dog in the snow")."""

from __future__ import annotations

from dataclasses import dataclass

from generation.samplers.core import CONCEPT, UNCOND, Sampler, guidance_weight


@dataclass(frozen=True)
class BaseParams:
    w: float = guidance_weight(7.0, "guidance scale on the concept prompt")


class BaseSampler(Sampler):
    """Base sampling of Soboleva et al. (arXiv 2502.05895): eps = eps_u + w (eps_c - eps_u).

    eps_u and eps_c are the unconditional and concept-prompt predictions at the same x_t; w = 7 is the
    paper's SD-2 scale. The reference code's ``svd_base`` command fills the template with the class
    word only; this is the rule the paper names, on the concept prompt. 2 evaluations per step.
    """

    name = "base"
    Params = BaseParams
    summary = "Classifier-free guidance on the concept prompt."
    equation = "eps = eps_u + w (eps_c - eps_u)"
    cost = "2 per step"
    sweep_preset = [{"w": w} for w in (3.0, 5.0, 7.0, 9.0)]
    full_branches = (UNCOND, CONCEPT)

    def weights(self, step):
        return {CONCEPT: self.params.w}
