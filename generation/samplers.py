"""Samplers as guidance rules over one denoising loop (pure Python: no torch import).

Each sampler says which branches (UNet inputs) a step needs and how to combine their noise
predictions into the one prediction the scheduler steps with. The loop in ``generation.loop`` runs one
batched UNet call over exactly those branches. The formulas follow Soboleva, Nakhodnov and Alanov,
*Beyond Fine-Tuning: A Systematic Study of Sampling Techniques in Personalized Image Generation*
(arXiv 2502.05895); symbols are the paper's (w, w_c, w_s, t_sw, q, w_c^0, w_s^0, r). Step windows
count denoising steps: step i = 0 is the noisiest, "the first t_sw steps" means i < t_sw.

``combine`` only uses ``+``, ``-`` and ``*`` on whatever tensors it is given, so this module, its
parameter dataclasses and its registry import without torch.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

from generation.errors import ParameterError

UNCOND = "uncond"
CONCEPT = "concept"
SUPERCLASS = "superclass"
SWAP_UNCOND = "swap_uncond"
SWAP_SUPERCLASS = "swap_superclass"

# Which latent trajectory and which prompt each branch feeds to the UNet.
BRANCH_INPUTS: dict[str, tuple[str, str]] = {
    UNCOND: ("main", "uncond"),
    CONCEPT: ("main", "concept"),
    SUPERCLASS: ("main", "superclass"),
    SWAP_UNCOND: ("swap", "uncond"),
    SWAP_SUPERCLASS: ("swap", "superclass"),
}

MAX_GUIDANCE = 50.0
MAX_STEP = 1000


def _param(default: Any, description: str, minimum: float | None = None, maximum: float | None = None):
    return field(default=default, metadata={"description": description, "minimum": minimum, "maximum": maximum})


def _weight(default: float, description: str):
    return _param(default, description, 0.0, MAX_GUIDANCE)


def _step(default: int, description: str):
    return _param(default, description, 0, MAX_STEP)


@dataclass(frozen=True)
class GuidanceOutput:
    """The combined noise prediction of one step, with the branch predictions it used."""

    eps: Any
    branch_preds: Mapping[str, Any]
    swap_eps: Any = None  # Photoswap's superclass trajectory; None for single-trajectory samplers


def guided(uncond: Any, cond: Any, weight: float) -> Any:
    """Classifier-free guidance in the diffusers form: eps_u + w (eps_cond - eps_u)."""
    return uncond + weight * (cond - uncond)


def two_way(uncond: Any, concept: Any, superclass: Any, w_c: float, w_s: float) -> Any:
    """The Mixed combination: eps_u + w_c (eps_c - eps_u) + w_s (eps_s - eps_u)."""
    return uncond + w_c * (concept - uncond) + w_s * (superclass - uncond)


# ---------------------------------------------------------------- parameters


@dataclass(frozen=True)
class BaseParams:
    w: float = _weight(7.0, "guidance scale on the concept prompt")


@dataclass(frozen=True)
class SuperclassParams:
    w: float = _weight(7.0, "guidance scale on the superclass prompt")


@dataclass(frozen=True)
class MixedParams:
    w_c: float = _weight(3.5, "guidance scale of the concept prompt")
    w_s: float = _weight(3.5, "guidance scale of the superclass prompt")


@dataclass(frozen=True)
class SwitchingParams:
    w: float = _weight(7.0, "guidance scale (superclass prompt before t_sw, concept prompt after)")
    t_sw: int = _step(7, "number of initial steps guided by the superclass prompt")


@dataclass(frozen=True)
class MultistageParams:
    w_c: float = _weight(4.0, "concept guidance after the switch")
    w_s: float = _weight(3.0, "superclass guidance after the switch")
    t_sw: int = _step(10, "number of initial steps guided by the superclass prompt alone, with scale w_c + w_s")


@dataclass(frozen=True)
class MaskedParams:
    t_sw: int = _step(3, "number of initial steps that use (w_c0, w_s0) everywhere, before the mask applies")
    w_c0: float = _weight(0.0, "concept guidance during the first t_sw steps (w_c^0)")
    w_s0: float = _weight(7.0, "superclass guidance during the first t_sw steps (w_s^0)")
    w_c: float = _weight(3.5, "concept guidance inside the mask")
    w_s: float = _weight(3.5, "superclass guidance inside the mask")
    w: float = _weight(7.0, "superclass guidance outside the mask")
    q: float = _param(0.7, "quantile of the attention map above which a latent pixel is in the mask", 0.0, 1.0)


@dataclass(frozen=True)
class ProfusionParams:
    w_c: float = _weight(3.5, "concept guidance of the main step")
    w_s: float = _weight(3.5, "superclass guidance of the main step")
    refine_steps: int = _param(1, "fusion (refine) iterations per step, R", 0, 10)
    r: float = _param(1.0, "refinement intensity: noise scale relative to the DDIM variance", 0.0, 1.0)
    w_r: float = _weight(7.0, "concept guidance inside the refinement")
    refine_seed: int = _param(10, "offset of the refinement noise seed from the image seed", 0, 2**31 - 1)


@dataclass(frozen=True)
class PhotoswapParams:
    t_sf: int = _step(5, "steps during which self-attention features are swapped in (t_SF)")
    t_cm: int = _step(15, "steps during which cross-attention maps are swapped in (t_CM)")
    t_sm: int = _step(20, "steps during which self-attention maps are swapped in (t_SM)")
    w_c: float = _weight(7.0, "guidance of the concept trajectory")
    w_s: float = _weight(7.0, "guidance of the superclass trajectory")
    align_tokens: bool = _param(
        True, "map cross-attention columns by template position (false: copy index by index, as the reference code)"
    )


# ---------------------------------------------------------------- samplers


class Sampler:
    """A guidance rule: which branches step i needs, and how their predictions combine.

    Subclasses set ``name``, ``Params``, ``summary``, ``equation`` and ``cost`` and implement
    ``branches`` and ``combine``. Both are plain functions of the step index: no hidden state.
    """

    name: ClassVar[str]
    Params: ClassVar[type]
    summary: ClassVar[str]
    equation: ClassVar[str]
    cost: ClassVar[str]

    def __init__(self, params: Any = None):
        if params is None:
            params = self.Params()
        if not isinstance(params, self.Params):
            raise ParameterError(f"{self.name}: expected {self.Params.__name__}, got {type(params).__name__}")
        self.params = params

    def branches(self, step: int) -> tuple[str, ...]:
        raise NotImplementedError

    def combine(self, step: int, preds: Mapping[str, Any], mask: Any = None) -> GuidanceOutput:
        raise NotImplementedError

    @property
    def refine_steps(self) -> int:
        """Extra fusion iterations before each main call (ProFusion only)."""
        return 0

    def needs_mask(self, step: int) -> bool:
        """Whether step i's combine needs the cross-attention mask (Masked only)."""
        return False

    def evaluations_per_image(self, steps: int) -> int:
        """UNet evaluations one image costs over a run of this many steps."""
        main = sum(len(self.branches(i)) for i in range(steps))
        return main + 2 * self.refine_steps * steps

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params})"


class BaseSampler(Sampler):
    """Base: classifier-free guidance on the concept prompt, eps = eps_u + w (eps_c - eps_u)."""

    name = "base"
    Params = BaseParams
    summary = "Classifier-free guidance on the concept prompt."
    equation = "eps = eps_u + w (eps_c - eps_u)"
    cost = "2 per step"

    def branches(self, step):
        return (UNCOND, CONCEPT)

    def combine(self, step, preds, mask=None):
        return GuidanceOutput(guided(preds[UNCOND], preds[CONCEPT], self.params.w), preds)


class SuperclassSampler(Sampler):
    """Superclass: classifier-free guidance on the superclass prompt, eps = eps_u + w (eps_s - eps_u)."""

    name = "superclass"
    Params = SuperclassParams
    summary = "Classifier-free guidance on the superclass prompt (the fine-tuned model, without the concept token)."
    equation = "eps = eps_u + w (eps_s - eps_u)"
    cost = "2 per step"

    def branches(self, step):
        return (UNCOND, SUPERCLASS)

    def combine(self, step, preds, mask=None):
        return GuidanceOutput(guided(preds[UNCOND], preds[SUPERCLASS], self.params.w), preds)


class MixedSampler(Sampler):
    """Mixed: eps = eps_u + w_c (eps_c - eps_u) + w_s (eps_s - eps_u) at every step."""

    name = "mixed"
    Params = MixedParams
    summary = "Concept and superclass guidance added at every step."
    equation = "eps = eps_u + w_c (eps_c - eps_u) + w_s (eps_s - eps_u)"
    cost = "3 per step"

    def branches(self, step):
        return (UNCOND, CONCEPT, SUPERCLASS)

    def combine(self, step, preds, mask=None):
        p = self.params
        return GuidanceOutput(two_way(preds[UNCOND], preds[CONCEPT], preds[SUPERCLASS], p.w_c, p.w_s), preds)


class SwitchingSampler(Sampler):
    """Switching: superclass guidance for i < t_sw, then concept guidance, both with scale w.

    eps = eps_u + w (eps_s - eps_u) for i < t_sw; eps = eps_u + w (eps_c - eps_u) for i >= t_sw.
    Only the two branches of the current phase are evaluated (the reference code evaluates three).
    """

    name = "switching"
    Params = SwitchingParams
    summary = "Superclass guidance for the first t_sw steps, then concept guidance."
    equation = "i < t_sw: eps = eps_u + w (eps_s - eps_u); i >= t_sw: eps = eps_u + w (eps_c - eps_u)"
    cost = "2 per step"

    def branches(self, step):
        return (UNCOND, SUPERCLASS) if step < self.params.t_sw else (UNCOND, CONCEPT)

    def combine(self, step, preds, mask=None):
        cond = preds[SUPERCLASS] if step < self.params.t_sw else preds[CONCEPT]
        return GuidanceOutput(guided(preds[UNCOND], cond, self.params.w), preds)


class MultistageSampler(Sampler):
    """Multi-stage: superclass guidance with scale w_c + w_s for i < t_sw, then Mixed(w_c, w_s)."""

    name = "multistage"
    Params = MultistageParams
    summary = "Superclass guidance (scale w_c + w_s) for the first t_sw steps, then Mixed."
    equation = (
        "i < t_sw: eps = eps_u + (w_c + w_s)(eps_s - eps_u); "
        "i >= t_sw: eps = eps_u + w_c (eps_c - eps_u) + w_s (eps_s - eps_u)"
    )
    cost = "2 per step for the first t_sw steps, then 3"

    def branches(self, step):
        return (UNCOND, SUPERCLASS) if step < self.params.t_sw else (UNCOND, CONCEPT, SUPERCLASS)

    def combine(self, step, preds, mask=None):
        p = self.params
        if step < p.t_sw:
            return GuidanceOutput(guided(preds[UNCOND], preds[SUPERCLASS], p.w_c + p.w_s), preds)
        return GuidanceOutput(two_way(preds[UNCOND], preds[CONCEPT], preds[SUPERCLASS], p.w_c, p.w_s), preds)


class MaskedSampler(Sampler):
    """Masked (the paper's equation 10): Mixed inside a cross-attention mask, superclass guidance outside.

    For i < t_sw: eps = eps_u + w_c^0 (eps_c - eps_u) + w_s^0 (eps_s - eps_u) everywhere.
    For i >= t_sw: eps = M * [eps_u + w_c (eps_c - eps_u) + w_s (eps_s - eps_u)]
                        + (1 - M) * [eps_u + w (eps_s - eps_u)],
    where M marks the latent pixels whose superclass-word cross-attention (superclass branch, averaged
    over heads and layers, same forward pass) is at or above its q-quantile. The reference code switches
    the inside expression to eps_u + w (eps_c - eps_u) when w_c or w_s is zero; this one keeps the
    equation as written.
    """

    name = "masked"
    Params = MaskedParams
    summary = "Mixed guidance inside the superclass word's cross-attention mask, superclass guidance outside."
    equation = (
        "i < t_sw: eps = eps_u + w_c0 (eps_c - eps_u) + w_s0 (eps_s - eps_u); "
        "i >= t_sw: eps = M [eps_u + w_c (eps_c - eps_u) + w_s (eps_s - eps_u)] + (1 - M)[eps_u + w (eps_s - eps_u)], "
        "M = A >= quantile_q(A)"
    )
    cost = "3 per step"

    def branches(self, step):
        return (UNCOND, CONCEPT, SUPERCLASS)

    def needs_mask(self, step):
        return step >= self.params.t_sw

    def combine(self, step, preds, mask=None):
        p = self.params
        u, c, s = preds[UNCOND], preds[CONCEPT], preds[SUPERCLASS]
        if step < p.t_sw:
            return GuidanceOutput(two_way(u, c, s, p.w_c0, p.w_s0), preds)
        if mask is None:
            raise ParameterError(f"masked: step {step}: expected a mask for steps >= t_sw={p.t_sw}, got None")
        inside = two_way(u, c, s, p.w_c, p.w_s)
        outside = guided(u, s, p.w)
        return GuidanceOutput(mask * inside + (1 - mask) * outside, preds)


class ProfusionSampler(Sampler):
    """ProFusion fusion sampling with a Mixed main step.

    Before each main step, R refinement iterations evaluate [uncond | concept], form
    eps~ = eps_u + w_r (eps_c - eps_u), take a stochastic DDIM step to the previous timestep with
    sigma = r sqrt(var(t, t_prev)) and re-noise back to t in closed form (``generation.loop.refine_latents``).
    The main step is Mixed: eps = eps_u + w_c (eps_c - eps_u) + w_s (eps_s - eps_u). With r = 0 the
    refinement is the identity.
    """

    name = "profusion"
    Params = ProfusionParams
    summary = "ProFusion's fusion (refine) iterations before each Mixed step."
    equation = (
        "refine: eps~ = eps_u + w_r (eps_c - eps_u), x_t <- x_t - eps~ s^2 sqrt(1 - a_t)/(1 - a_p) "
        "+ s z sqrt((1 - a_t)(2 - 2 a_p - s^2))/(1 - a_p), s = r sqrt(var(t, t_prev)); "
        "main: eps = eps_u + w_c (eps_c - eps_u) + w_s (eps_s - eps_u)"
    )
    cost = "3 + 2 R per step"

    @property
    def refine_steps(self):
        return self.params.refine_steps

    def branches(self, step):
        return (UNCOND, CONCEPT, SUPERCLASS)

    def refine_branches(self, step: int) -> tuple[str, ...]:
        return (UNCOND, CONCEPT)

    def refine_combine(self, step: int, preds: Mapping[str, Any]) -> GuidanceOutput:
        return GuidanceOutput(guided(preds[UNCOND], preds[CONCEPT], self.params.w_r), preds)

    def combine(self, step, preds, mask=None):
        p = self.params
        return GuidanceOutput(two_way(preds[UNCOND], preds[CONCEPT], preds[SUPERCLASS], p.w_c, p.w_s), preds)


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
    """Photoswap: a concept trajectory borrows attention from a superclass trajectory.

    Both trajectories start from the same noise; each step evaluates [u on x^c | p_c on x^c | u on x^s |
    p_s on x^s]. In the concept branch, self-attention features (i < t_SF), self-attention maps
    (i < t_SM) and cross-attention maps (i < t_CM) are replaced by the superclass branch's. Guidance:
    eps^c = eps_u^c + w_c (eps_c - eps_u^c), eps^s = eps_u^s + w_s (eps_s - eps_u^s). Cross-attention
    columns are mapped by template position, so the extra concept token does not shift later tokens.
    """

    name = "photoswap"
    Params = PhotoswapParams
    summary = "Attention swapping from a parallel superclass trajectory into the concept trajectory."
    equation = (
        "eps^c = eps_u^c + w_c (eps_c - eps_u^c), eps^s = eps_u^s + w_s (eps_s - eps_u^s); "
        "concept branch takes self-attention features (i < t_SF), self-attention maps (i < t_SM) and "
        "cross-attention maps (i < t_CM) from the superclass branch"
    )
    cost = "4 per step"

    def branches(self, step):
        return (UNCOND, CONCEPT, SWAP_UNCOND, SWAP_SUPERCLASS)

    def swap_flags(self, step: int) -> SwapFlags:
        p = self.params
        return SwapFlags(self_features=step < p.t_sf, self_maps=step < p.t_sm, cross_maps=step < p.t_cm)

    def combine(self, step, preds, mask=None):
        p = self.params
        return GuidanceOutput(
            eps=guided(preds[UNCOND], preds[CONCEPT], p.w_c),
            branch_preds=preds,
            swap_eps=guided(preds[SWAP_UNCOND], preds[SWAP_SUPERCLASS], p.w_s),
        )


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

# ---------------------------------------------------------------- validation and description

_TYPE_NAMES = {float: "number", int: "integer", bool: "boolean"}


def _sampler_class(name: str) -> type[Sampler]:
    try:
        return SAMPLERS[name]
    except (KeyError, TypeError):
        raise ParameterError(f"unknown sampler {name!r}: expected one of {', '.join(SAMPLER_NAMES)}") from None


def _field_kind(spec: dataclasses.Field) -> type:
    return spec.type if isinstance(spec.type, type) else {"float": float, "int": int, "bool": bool}[spec.type]


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _check_value(sampler: str, spec: dataclasses.Field, value: Any) -> Any:
    kind = _field_kind(spec)
    low, high = spec.metadata.get("minimum"), spec.metadata.get("maximum")
    prefix = f"{sampler}: {spec.name}: expected"
    if kind is bool:
        if not isinstance(value, bool):
            raise ParameterError(f"{prefix} true or false, got {value!r}")
        return value
    noun = "an integer" if kind is int else "a number"
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not is_number or (isinstance(value, float) and not math.isfinite(value)):
        raise ParameterError(f"{prefix} {noun} in [{_fmt(low)}, {_fmt(high)}], got {value!r}")
    if kind is int:
        if isinstance(value, float) and not value.is_integer():
            raise ParameterError(f"{prefix} {noun}, got {value!r}")
        value = int(value)
    else:
        value = float(value)
    if value < low:
        raise ParameterError(f"{prefix} {noun} >= {_fmt(low)}, got {_fmt(value)}")
    if value > high:
        raise ParameterError(f"{prefix} {noun} <= {_fmt(high)}, got {_fmt(value)}")
    return value


def validate_params(name: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return the sampler's full parameter dict (defaults filled); raise ParameterError on bad input."""
    cls = _sampler_class(name)
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise ParameterError(f"{name}: parameters: expected an object of name -> value, got {type(params).__name__}")
    specs = {spec.name: spec for spec in dataclasses.fields(cls.Params)}
    for key in params:
        if key not in specs:
            raise ParameterError(f"{name}: unknown parameter {key!r}: expected one of {', '.join(specs)}")
    return {
        key: _check_value(name, spec, params[key]) if key in params else spec.default for key, spec in specs.items()
    }


def build_sampler(name: str, params: Mapping[str, Any] | None = None) -> Sampler:
    """Validate the parameters and return the sampler object the loop runs."""
    cls = _sampler_class(name)
    return cls(cls.Params(**validate_params(name, params)))


def _parameter_rows(cls: type[Sampler]) -> list[dict[str, Any]]:
    rows = []
    for spec in dataclasses.fields(cls.Params):
        kind = _field_kind(spec)
        rows.append(
            {
                "name": spec.name,
                "type": _TYPE_NAMES[kind],
                "default": spec.default,
                "minimum": spec.metadata.get("minimum"),
                "maximum": spec.metadata.get("maximum"),
                "description": spec.metadata["description"],
            }
        )
    return rows


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


def json_schema(name: str) -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) of the sampler's parameters."""
    cls = _sampler_class(name)
    properties = {}
    for row in _parameter_rows(cls):
        prop: dict[str, Any] = {"type": row["type"], "default": row["default"], "description": row["description"]}
        if row["minimum"] is not None:
            prop["minimum"] = row["minimum"]
        if row["maximum"] is not None:
            prop["maximum"] = row["maximum"]
        properties[row["name"]] = prop
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"{cls.name} sampler parameters",
        "description": cls.summary,
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }


# ---------------------------------------------------------------- sweep presets

# Grids in the spirit of the paper's Figure 4/5 sweeps: the total guidance stays 7.0 (the SD-2 Base
# scale) while it moves between concept and superclass, and switch points cover the early steps.
# The paper's exact grids were not published with the code, so these are presets, not a reproduction.
SWEEP_PRESETS: dict[str, list[dict[str, Any]]] = {
    "base": [{"w": w} for w in (3.0, 5.0, 7.0, 9.0)],
    "superclass": [{"w": w} for w in (3.0, 5.0, 7.0, 9.0)],
    "mixed": [{"w_s": w_s, "w_c": 7.0 - w_s} for w_s in (0.0, 1.0, 2.0, 3.0, 3.5, 4.0, 5.0, 6.0, 7.0)],
    "switching": [{"t_sw": t} for t in (0, 2, 5, 7, 10, 15, 20, 25)],
    "multistage": [{"w_s": w_s, "w_c": 7.0 - w_s, "t_sw": t} for t in (5, 10, 15) for w_s in (1.0, 2.0, 3.0, 4.0)],
    "masked": [{"q": q, "t_sw": t} for t in (3, 7) for q in (0.5, 0.6, 0.7, 0.8, 0.9)],
    "profusion": [{"r": r, "refine_steps": 1} for r in (0.0, 0.25, 0.5, 0.75, 1.0)],
    "photoswap": [
        {"t_sf": t_sf, "t_cm": t_cm, "t_sm": t_sm}
        for t_sf, t_cm, t_sm in ((0, 10, 10), (5, 15, 20), (5, 20, 25), (10, 25, 30))
    ],
}
