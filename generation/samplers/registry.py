"""Sampler names to classes, parameter validation by name, descriptions and sweep presets."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from generation.errors import ParameterError
from generation.samplers.base import BaseSampler
from generation.samplers.core import Sampler, check_params, field_kind
from generation.samplers.masked import MaskedSampler
from generation.samplers.mixed import MixedSampler
from generation.samplers.multistage import MultistageSampler
from generation.samplers.photoswap import PhotoswapSampler
from generation.samplers.profusion import ProfusionSampler
from generation.samplers.superclass import SuperclassSampler
from generation.samplers.switching import SwitchingSampler
from generation.steps import check_steps

SAMPLERS: dict[str, type[Sampler]] = {
    cls.name: cls
    for cls in (
        BaseSampler,
        SuperclassSampler,
        MixedSampler,
        SwitchingSampler,
        MultistageSampler,
        MaskedSampler,
        ProfusionSampler,
        PhotoswapSampler,
    )
}
SAMPLER_NAMES: tuple[str, ...] = tuple(SAMPLERS)

# Each sampler's ``sweep_preset``: the paper's Section 4 grids where it states one.
SWEEP_PRESETS: dict[str, list[dict[str, Any]]] = {name: cls.sweep_preset for name, cls in SAMPLERS.items()}

_TYPE_NAMES = {float: "number", int: "integer", bool: "boolean", str: "string"}


def sampler_class(name: str) -> type[Sampler]:
    try:
        return SAMPLERS[name]
    except (KeyError, TypeError):
        raise ParameterError(f"unknown sampler {name!r}: expected one of {', '.join(SAMPLER_NAMES)}") from None


def validate_params(name: str, params: Mapping[str, Any] | None, steps: int | None = None) -> dict[str, Any]:
    """Return the sampler's full parameter dict (defaults filled); raise ParameterError on bad input.

    ``steps``, the run's length when known, is checked too and named in step-window errors.
    """
    if steps is not None:
        check_steps(steps)
    return check_params(name, sampler_class(name).Params, params, steps)


def build_sampler(name: str, params: Mapping[str, Any] | None = None, *, paper_batching: bool = False) -> Sampler:
    """Validate the parameters and return the sampler object the loop runs.

    ``paper_batching=True`` evaluates every branch at every step, as the reference code does (for
    cost comparisons only).
    """
    cls = sampler_class(name)
    return cls(cls.Params(**validate_params(name, params)), paper_batching=paper_batching)


def _parameter_row(spec: dataclasses.Field) -> dict[str, Any]:
    row = {
        "name": spec.name,
        "type": _TYPE_NAMES[field_kind(spec)],
        "default": spec.default,
        "minimum": spec.metadata.get("minimum"),
        "maximum": spec.metadata.get("maximum"),
        "description": spec.metadata["description"],
    }
    if "choices" in spec.metadata:
        row["choices"] = list(spec.metadata["choices"])
    if spec.metadata.get("nullable"):
        row["nullable"] = True
    if spec.metadata.get("window"):
        row["step_window"] = True
    return row


def _parameter_rows(cls: type[Sampler]) -> list[dict[str, Any]]:
    return [_parameter_row(spec) for spec in dataclasses.fields(cls.Params)]


def describe() -> list[dict[str, Any]]:
    """Every sampler with its summary, equation, cost per image per step and parameters."""
    return [
        {
            "name": cls.name,
            "summary": cls.summary,
            "equation": cls.equation,
            "cost": cls.cost,
            "parameters": _parameter_rows(cls),
        }
        for cls in SAMPLERS.values()
    ]
