"""What every sampler shares: branch names, the Sampler base, its run hooks, parameter fields and validation.

A sampler is a guidance rule over the one denoising loop in ``generation.loop``. It declares what it
needs as plain functions of the step index i (i = 0 is the noisiest step; "the first t_sw steps" means
i < t_sw), and the loop serves those needs without knowing which sampler it runs:

* ``branches(i)``: the (trajectory, prompt) inputs of step i's one batched UNet call (``BRANCH_INPUTS``):
  only those the step uses (a branch with weight zero, or a trajectory whose windows have passed, is
  left out), or with ``paper_batching`` every branch the reference code evaluates (``full_branches``);
* ``combine(i, preds, mask)``: the noise prediction of each trajectory, from the branch predictions;
* ``trajectories``: the latent trajectories the run keeps (Photoswap adds a second one);
* ``extra_evaluations(i)``: UNet evaluations its hooks spend at step i besides the main call
  (ProFusion's fusion iterations);
* ``run_hooks(run)``: a per-run ``RunHooks`` object that installs attention processors (Masked's
  capture, Photoswap's swapping), makes extra model calls before a step and hands ``combine`` a mask.

Step windows (t_sw, Photoswap's t_SF, t_CM, t_SM) count steps of a ``window_steps``-step schedule
(the paper's 50); ``for_steps(steps)`` rescales them to a run of any length, so a method hands over at
the same point of the schedule at 25, 50 or 100 steps.

Everything here is pure Python: ``combine`` only uses ``+``, ``-`` and ``*`` on whatever it is given,
and hooks import torch inside their methods, so the registry imports without torch.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from generation.errors import ParameterError
from generation.prompts import PromptSet
from generation.steps import MAX_STEPS

# Branches: one UNet input each, named after the prompt it is conditioned on.
UNCOND = "uncond"
CONCEPT = "concept"
SUPERCLASS = "superclass"
SWAP_UNCOND = "swap_uncond"
SWAP_SUPERCLASS = "swap_superclass"

# Trajectories: the latents the scheduler steps. Every run has MAIN; Photoswap adds SWAP.
MAIN = "main"
SWAP = "swap"

# Which trajectory and which prompt each branch feeds to the UNet.
BRANCH_INPUTS: dict[str, tuple[str, str]] = {
    UNCOND: (MAIN, UNCOND),
    CONCEPT: (MAIN, CONCEPT),
    SUPERCLASS: (MAIN, SUPERCLASS),
    SWAP_UNCOND: (SWAP, UNCOND),
    SWAP_SUPERCLASS: (SWAP, SUPERCLASS),
}

MAX_GUIDANCE = 50.0

# The schedule the paper's step windows are counted on (its SD-2 runs take 50 DDIM steps).
PAPER_STEPS = 50
WINDOW_STEPS = "window_steps"


# ---------------------------------------------------------------- parameter fields


def parameter(default: Any, description: str, minimum: float | None = None, maximum: float | None = None, **extra: Any):
    """A Params dataclass field with the bounds and description that validation and ``describe`` read."""
    metadata = {"description": description, "minimum": minimum, "maximum": maximum, **extra}
    return field(default=default, metadata=metadata)


def guidance_weight(default: float, description: str):
    return parameter(default, description, 0.0, MAX_GUIDANCE)


def optional_guidance_weight(description: str):
    """A guidance weight that may be null: the sampler then derives it (Masked's outside weight)."""
    return parameter(None, description, 0.0, MAX_GUIDANCE, nullable=True)


def choice(default: str, description: str, choices: tuple[str, ...]):
    return parameter(default, description, choices=choices)


def step_window(default: int, description: str):
    """A number of initial steps of the ``window_steps``-step schedule (checked against it in ``check_params``)."""
    return parameter(default, description, 0, MAX_STEPS, window=True)


def window_schedule():
    """The ``window_steps`` field: the length of the schedule the sampler's step windows count."""
    return parameter(
        PAPER_STEPS,
        "steps of the schedule the step windows count (the paper's 50); a run of S steps uses "
        "floor(window * S / window_steps) steps",
        1,
        MAX_STEPS,
    )


def window_fields(params_class: type) -> tuple[str, ...]:
    return tuple(spec.name for spec in dataclasses.fields(params_class) if spec.metadata.get("window"))


def rescaled_window(window: int, schedule: int, steps: int) -> int:
    """The steps of a ``steps``-step run that a window of ``window`` steps of a ``schedule``-step schedule covers.

    Rounding down, as diffusers' guiders turn a start fraction into a step (``int(start * steps)``):
    the handover lands within one step of the same timestep at any step count, and 0 and the whole
    schedule stay 0 and the whole run.
    """
    return window * steps // schedule


# ---------------------------------------------------------------- guidance over the branches a step needs


def weighted_guidance(preds: Mapping[str, Any], weights: Mapping[str, float]) -> Any:
    """eps_u + sum of w_b (eps_b - eps_u) over the branches b with a non-zero weight."""
    uncond = preds[UNCOND]
    eps = uncond
    for branch, weight in weights.items():
        if weight:
            eps = eps + weight * (preds[branch] - uncond)
    return eps


def weighted_branches(weights: Mapping[str, float]) -> tuple[str, ...]:
    """The unconditional branch and every branch whose weight is not zero."""
    return (UNCOND, *(branch for branch, weight in weights.items() if weight))


# ---------------------------------------------------------------- what a step produces


@dataclass(frozen=True)
class GuidanceOutput:
    """The combined noise prediction of one step, with the branch predictions it used."""

    eps: Any
    branch_preds: Mapping[str, Any]
    swap_eps: Any = None  # the SWAP trajectory's prediction; None when the step has no second trajectory

    def by_trajectory(self) -> dict[str, Any]:
        """The prediction the scheduler steps each trajectory with at this step."""
        predictions = {MAIN: self.eps}
        if self.swap_eps is not None:
            predictions[SWAP] = self.swap_eps
        return predictions


def guided(uncond: Any, cond: Any, weight: float) -> Any:
    """Classifier-free guidance in the diffusers form: eps_u + w (eps_cond - eps_u)."""
    return uncond + weight * (cond - uncond)


# ---------------------------------------------------------------- what the loop offers a run


class RunContext(Protocol):
    """The state of one batch that the loop shares with a sampler's run hooks."""

    unet: Any
    tokenizer: Any
    prompts: PromptSet
    seeds: list[int]
    latent_size: tuple[int, int]
    device: Any
    dtype: Any
    embeds: dict[str, Any]  # text embeddings (1, tokens, width) per prompt name
    trajectories: dict[str, Any]  # latents per trajectory name; hooks may replace them
    prediction_type: str

    def rows(self, branches: tuple[str, ...], branch: str) -> slice:
        """The batch rows of ``branch`` in a UNet call over ``branches``."""

    def call_unet(self, branches: tuple[str, ...], timestep: Any) -> dict[str, Any]:
        """One batched UNet call over ``branches`` (counted); each branch's prediction."""

    def alphas(self, timestep: Any) -> tuple[float, float]:
        """Cumulative alphas at ``timestep`` and at the previous timestep of the schedule."""


class RunHooks:
    """Per-run help a sampler asks of the loop. Every hook is a no-op here; samplers override what they need."""

    def installed(self) -> contextlib.AbstractContextManager:
        """Context for the whole run: attention processors go in on entry and out on exit."""
        return contextlib.nullcontext()

    def before_step(self, step: int, timestep: Any) -> None:
        """Runs before step i's main call; may call the UNet and replace trajectories (ProFusion's fusion)."""

    def before_call(self, step: int, branches: tuple[str, ...]) -> None:
        """Told the batch layout of step i's main call (which rows hold which branch)."""

    def mask(self, step: int) -> Any:
        """What step i's ``combine`` gets as ``mask``, read after the main call; None if nothing."""
        return None

    def final_mask(self) -> Any:
        """The last mask of the run, (N, 1, h, w), returned with the images; None if the sampler has none."""
        return None


# ---------------------------------------------------------------- the sampler base


class Sampler:
    """A guidance rule: which branches step i needs, and how their predictions combine.

    Subclasses set ``name``, ``Params``, ``summary``, ``equation``, ``cost`` and ``sweep_preset``. A rule
    of the form eps_u + sum w_b (eps_b - eps_u) only implements ``weights(i)``; the base then evaluates
    exactly the branches with a non-zero weight and combines them. Other rules implement
    ``needed_branches`` and ``combine``, both plain functions of the step index (no hidden state).
    Per-run state lives in the ``RunHooks`` object of ``run_hooks``, never on the sampler, so one
    sampler object can run many batches.

    ``paper_batching=True`` makes ``branches`` return ``full_branches`` at every step, what the
    reference code evaluates, for cost comparisons; the images are the same (within batching noise).
    """

    name: ClassVar[str]
    Params: ClassVar[type]
    summary: ClassVar[str]
    equation: ClassVar[str]
    cost: ClassVar[str]
    sweep_preset: ClassVar[list[dict[str, Any]]]
    trajectories: ClassVar[tuple[str, ...]] = (MAIN,)
    full_branches: ClassVar[tuple[str, ...]] = (UNCOND, CONCEPT, SUPERCLASS)

    _DECLARATIONS = ("name", "Params", "summary", "equation", "cost", "sweep_preset")

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        missing = [attribute for attribute in cls._DECLARATIONS if not hasattr(cls, attribute)]
        if missing:
            raise TypeError(f"sampler {cls.__name__}: expected class attributes {', '.join(missing)}, got none")

    def __init__(self, params: Any = None, *, paper_batching: bool = False):
        if params is None:
            params = self.Params()
        if not isinstance(params, self.Params):
            raise ParameterError(f"{self.name}: expected {self.Params.__name__}, got {type(params).__name__}")
        self.params = params
        self.paper_batching = paper_batching

    def weights(self, step: int) -> dict[str, float]:
        """Guidance weight per conditional branch of step i's rule eps_u + sum w_b (eps_b - eps_u)."""
        raise NotImplementedError

    def needed_branches(self, step: int) -> tuple[str, ...]:
        """The branches step i's prediction depends on."""
        return weighted_branches(self.weights(step))

    def branches(self, step: int) -> tuple[str, ...]:
        return self.full_branches if self.paper_batching else self.needed_branches(step)

    def combine(self, step: int, preds: Mapping[str, Any], mask: Any = None) -> GuidanceOutput:
        return GuidanceOutput(weighted_guidance(preds, self.weights(step)), preds)

    def extra_evaluations(self, step: int) -> int:
        """UNet evaluations per image that the run hooks spend at step i besides the main call."""
        return 0

    def run_hooks(self, run: RunContext) -> RunHooks:
        """Per-run hooks; the default needs nothing beyond the main call."""
        return RunHooks()

    def for_steps(self, steps: int) -> Sampler:
        """This sampler with its step windows rescaled from ``window_steps`` to a run of ``steps`` steps."""
        windows = window_fields(self.Params)
        schedule = getattr(self.params, WINDOW_STEPS, steps)
        if not windows or schedule == steps:
            return self
        rescaled = {name: rescaled_window(getattr(self.params, name), schedule, steps) for name in windows}
        clone = copy.copy(self)
        clone.params = dataclasses.replace(self.params, **rescaled, **{WINDOW_STEPS: steps})
        return clone

    def evaluations_per_image(self, steps: int) -> int:
        """UNet evaluations one image costs over a run of this many steps."""
        run = self.for_steps(steps)
        return sum(len(run.branches(i)) + run.extra_evaluations(i) for i in range(steps))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params})"


# ---------------------------------------------------------------- validation


_KINDS = {"float": float, "int": int, "bool": bool, "str": str}


def field_kind(spec: dataclasses.Field) -> type:
    """float, int, bool or str: the declared type of a Params field (annotations may be strings, "float | None")."""
    if isinstance(spec.type, type):
        return spec.type
    return _KINDS[spec.type.removesuffix(" | None")]


def check_params(
    sampler: str, params_class: type, params: Mapping[str, Any] | None, steps: int | None = None
) -> dict[str, Any]:
    """The full parameter dict of a sampler (defaults filled, numbers normalised); ParameterError on bad input.

    Step windows are checked against the schedule they count (``window_steps``); ``steps``, the run's
    length when known, only makes the message say what the window becomes.
    """
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise ParameterError(f"{sampler}: parameters: expected an object of name -> value, got {type(params).__name__}")
    specs = {spec.name: spec for spec in dataclasses.fields(params_class)}
    for key in params:
        if key not in specs:
            raise ParameterError(f"{sampler}: unknown parameter {key!r}: expected one of {', '.join(specs)}")
    values = {
        key: _check_value(sampler, spec, params[key]) if key in params else spec.default for key, spec in specs.items()
    }
    _check_windows(sampler, params_class, values, steps)
    return values


def _check_windows(sampler: str, params_class: type, values: dict[str, Any], steps: int | None) -> None:
    schedule = values.get(WINDOW_STEPS)
    for name in window_fields(params_class):
        if values[name] <= schedule:
            continue
        run = f", rescaled to the run's {steps} steps" if steps is not None else ""
        raise ParameterError(
            f"{sampler}: {name}: expected an integer in [0, {schedule}] (steps of the {schedule}-step schedule "
            f"that window_steps sets{run}), got {values[name]}"
        )


def _format_bound(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _check_value(sampler: str, spec: dataclasses.Field, value: Any) -> Any:
    kind = field_kind(spec)
    low, high = spec.metadata.get("minimum"), spec.metadata.get("maximum")
    prefix = f"{sampler}: {spec.name}: expected"
    if value is None and spec.metadata.get("nullable"):
        return None
    if kind is bool:
        if not isinstance(value, bool):
            raise ParameterError(f"{prefix} true or false, got {value!r}")
        return value
    if kind is str:
        choices = spec.metadata["choices"]
        if value not in choices:
            raise ParameterError(f"{prefix} one of {', '.join(choices)}, got {value!r}")
        return value
    noun = "an integer" if kind is int else "a number"
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if not is_number or (isinstance(value, float) and not math.isfinite(value)):
        null = " (or null)" if spec.metadata.get("nullable") else ""
        raise ParameterError(f"{prefix} {noun} in [{_format_bound(low)}, {_format_bound(high)}]{null}, got {value!r}")
    if kind is int:
        if isinstance(value, float) and not value.is_integer():
            raise ParameterError(f"{prefix} {noun}, got {value!r}")
        value = int(value)
    else:
        value = float(value)
    if value < low:
        raise ParameterError(f"{prefix} {noun} >= {_format_bound(low)}, got {_format_bound(value)}")
    if value > high:
        raise ParameterError(f"{prefix} {noun} <= {_format_bound(high)}, got {_format_bound(value)}")
    return value
