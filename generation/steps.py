"""The number of denoising steps a run may take: one limit for the API, the loop and the samplers' step windows."""

from __future__ import annotations

from typing import Any

from generation.errors import ParameterError

MAX_STEPS = 1000


def check_steps(steps: Any) -> int:
    """Return ``steps`` if it is an integer in [1, MAX_STEPS]; raise ParameterError otherwise."""
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
        raise ParameterError(f"steps: expected an integer in [1, {MAX_STEPS}], got {steps!r}")
    return steps
