"""Switching: superclass guidance for the first t_sw steps, then concept guidance."""

from __future__ import annotations

from dataclasses import dataclass

from generation.samplers.core import CONCEPT, SUPERCLASS, Sampler, guidance_weight, step_window, window_schedule


@dataclass(frozen=True)
class SwitchingParams:
    w: float = guidance_weight(7.0, "guidance scale (superclass prompt before t_sw, concept prompt after)")
    t_sw: int = step_window(7, "number of initial steps (of window_steps) guided by the superclass prompt")
    window_steps: int = window_schedule()


class SwitchingSampler(Sampler):
    """Switching sampling of Soboleva et al. (arXiv 2502.05895), both phases with scale w:

    i < t_sw:  eps = eps_u + w (eps_s - eps_u)
    i >= t_sw: eps = eps_u + w (eps_c - eps_u)

    The superclass prompt lays out the image, the concept prompt then fills in the subject. SD-2
    defaults w = 7, t_sw = 7 of 50 steps (rescaled to the run's steps); t_sw = 0 is Base. Only the two
    branches of the current phase are evaluated, 2 per step (the reference code evaluates three).
    """

    name = "switching"
    Params = SwitchingParams
    summary = "Superclass guidance for the first t_sw steps, then concept guidance."
    equation = "i < t_sw: eps = eps_u + w (eps_s - eps_u); i >= t_sw: eps = eps_u + w (eps_c - eps_u)"
    cost = "2 per step"
    # The paper's Section 4 grid (steps of its 50-step schedule).
    sweep_preset = [{"t_sw": t} for t in (1, 3, 5, 7, 10, 20, 30, 40)]

    def weights(self, step):
        return {SUPERCLASS: self.params.w} if step < self.params.t_sw else {CONCEPT: self.params.w}
