"""Samplers as guidance rules over one denoising loop, one module per sampler (pure Python: no torch import).

Each sampler says which branches (UNet inputs) a step needs and how to combine their noise
predictions into the prediction the scheduler steps with; ``generation.loop`` runs one batched UNet
call over exactly those branches. The rules follow Soboleva, Nakhodnov and Alanov, *Beyond
Fine-Tuning: A Systematic Study of Sampling Techniques in Personalized Image Generation* (arXiv
2502.05895), with the paper's symbols (w, w_c, w_s, t_sw, q, w_c^0, w_s^0, r).

``core`` holds what they share (branch names, the Sampler base and its run hooks, parameter fields,
validation), ``registry`` maps names to classes; ``mixed.py`` is where the Mixed combination lives.
"""

from generation.samplers.core import (
    BRANCH_INPUTS,
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
)
from generation.samplers.registry import (
    SAMPLER_NAMES,
    SAMPLERS,
    SWEEP_PRESETS,
    build_sampler,
    describe,
    sampler_class,
    validate_params,
)

__all__ = [
    "BRANCH_INPUTS",
    "CONCEPT",
    "MAIN",
    "SAMPLERS",
    "SAMPLER_NAMES",
    "SUPERCLASS",
    "SWAP",
    "SWAP_SUPERCLASS",
    "SWAP_UNCOND",
    "SWEEP_PRESETS",
    "UNCOND",
    "GuidanceOutput",
    "RunContext",
    "RunHooks",
    "Sampler",
    "build_sampler",
    "describe",
    "sampler_class",
    "validate_params",
]
