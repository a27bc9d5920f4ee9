"""Multi-stage: superclass guidance (scale w_c + w_s) for the first t_sw steps, then Mixed."""

from __future__ import annotations

from dataclasses import dataclass

from generation.samplers.core import CONCEPT, SUPERCLASS, Sampler, guidance_weight, step_window, window_schedule


@dataclass(frozen=True)
class MultistageParams:
    w_c: float = guidance_weight(4.0, "concept guidance after the switch")
    w_s: float = guidance_weight(3.0, "superclass guidance after the switch")
    t_sw: int = step_window(
        10, "number of initial steps (of window_steps) guided by the superclass prompt alone, with scale w_c + w_s"
    )
    window_steps: int = window_schedule()


class MultistageSampler(Sampler):
    """Multi-stage sampling of Soboleva et al. (arXiv 2502.05895): Switching's first phase, then Mixed.

    i < t_sw:  eps = eps_u + (w_c + w_s)(eps_s - eps_u)
    i >= t_sw: eps = eps_u + w_c (eps_c - eps_u) + w_s (eps_s - eps_u)

    The first phase keeps the total guidance w_c + w_s. SD-2 defaults w_c = 4, w_s = 3, t_sw = 10 of 50
    steps; t_sw = 0 is Mixed. 2 evaluations per step before t_sw, 3 after (2 if w_c or w_s is 0).
    """

    name = "multistage"
    Params = MultistageParams
    summary = "Superclass guidance (scale w_c + w_s) for the first t_sw steps, then Mixed."
    equation = (
        "i < t_sw: eps = eps_u + (w_c + w_s)(eps_s - eps_u); "
        "i >= t_sw: eps = eps_u + w_c (eps_c - eps_u) + w_s (eps_s - eps_u)"
    )
    cost = "2 per step for the first t_sw steps, then 3"
    sweep_preset = [{"w_s": w_s, "w_c": 7.0 - w_s, "t_sw": t} for t in (5, 10, 15) for w_s in (1.0, 2.0, 3.0, 4.0)]

    def weights(self, step):
        p = self.params
        if step < p.t_sw:
            return {SUPERCLASS: p.w_c + p.w_s}
        return {CONCEPT: p.w_c, SUPERCLASS: p.w_s}
