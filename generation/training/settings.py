"""Fine-tuning settings with their published defaults and limits, progress reports and results.

Nothing here imports torch: the platform validates a run's settings before anything is queued.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from generation.errors import FineTuneError

METHODS = ("dreambooth", "lora", "textual_inversion")
FORMATS = {"dreambooth": "full", "lora": "lora", "textual_inversion": "textual_inversion"}

# Learning rates when none is given, each the value its method's reference recipe uses:
# DreamBooth on Stable Diffusion 5e-6 (diffusers examples/dreambooth/README.md, train_dreambooth.py
# with 400 steps), DreamBooth-LoRA 1e-4 (the same README's LoRA section, train_dreambooth_lora.py),
# Textual Inversion 5e-4 (diffusers examples/textual_inversion/README.md; that script also scales it
# by the batch size, which we do not).
DEFAULT_LEARNING_RATES = {"dreambooth": 5e-6, "lora": 1e-4, "textual_inversion": 5e-4}

# Inclusive limits: (minimum, maximum). They bound what a run may ask a shared GPU worker to do and
# exclude values that only diverge (a learning rate above 1e-2 destroys any of the three methods).
LIMITS: dict[str, tuple[float, float]] = {
    "steps": (1, 100_000),
    "learning_rate": (1e-8, 1e-2),
    "batch_size": (1, 64),
    "resolution": (32, 2048),
    "lora_rank": (1, 256),
    "prior_loss_weight": (0.0, 10.0),
    "class_images": (1, 1000),
    "checkpoint_every": (1, 100_000),
    "seed": (0, 2**32 - 1),
}
# Which UNet layers DreamBooth-LoRA adapts: "attention" (diffusers' train_dreambooth_lora.py: the
# attention projections) or "all" (those, the transformer blocks' projections and feed-forward layers,
# and the ResNet convolutions). "all" is what binds a subject on a small UNet whose attention sits only
# at the coarse resolutions (docs/world.md).
# The UNet modules each choice adapts (peft matches them by name suffix).
LORA_TARGET_MODULES = {
    "attention": ["to_k", "to_q", "to_v", "to_out.0"],
    "all": [
        "to_k", "to_q", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2",
        "conv1", "conv2", "conv_shortcut", "time_emb_proj",
    ],
}  # fmt: skip
LORA_TARGETS = tuple(LORA_TARGET_MODULES)
RESOLUTION_MULTIPLE = 8  # the VAE's scale factor; the model's own constraint is checked at load time


@dataclass(frozen=True)
class FineTuneSettings:
    """What to train and how; ``validate`` checks every field against ``LIMITS``."""

    method: str  # "dreambooth" (full UNet), "lora" (peft LoRA on the UNet attention), "textual_inversion"
    steps: int = 400  # diffusers' DreamBooth recipe (README: --max_train_steps=400)
    learning_rate: float | None = None  # None -> DEFAULT_LEARNING_RATES[method]
    batch_size: int = 1
    resolution: int | None = None  # None -> the base model's native size
    lora_rank: int = 4  # diffusers' train_dreambooth_lora.py --rank default
    lora_targets: str = "attention"  # one of LORA_TARGETS
    train_text_encoder: bool = False  # DreamBooth only
    prior_preservation: bool = False
    prior_loss_weight: float = 1.0  # DreamBooth paper and diffusers' --prior_loss_weight
    class_images: int = 50
    checkpoint_every: int = 100
    seed: int = 0

    @property
    def effective_learning_rate(self) -> float:
        return self.learning_rate if self.learning_rate is not None else DEFAULT_LEARNING_RATES[self.method]

    @property
    def format(self) -> str:
        return FORMATS[self.method]

    def validate(self) -> None:
        """Raise FineTuneError naming the field, its limit and the value, for the first bad field."""
        if not isinstance(self.method, str) or self.method not in METHODS:
            raise FineTuneError(f"method: expected one of {', '.join(METHODS)}, got {self.method!r}")
        for spec in dataclasses.fields(self):
            _check_type(spec.name, getattr(self, spec.name), _TYPES[spec.name])
        for name, (low, high) in LIMITS.items():
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, float) and not math.isfinite(value):
                raise FineTuneError(f"{name}: expected a finite number in [{low:g}, {high:g}], got {value!r}")
            if not low <= value <= high:
                raise FineTuneError(f"{name}: expected a value in [{low:g}, {high:g}], got {value!r}")
        if self.resolution is not None and self.resolution % RESOLUTION_MULTIPLE:
            raise FineTuneError(
                f"resolution: expected a multiple of {RESOLUTION_MULTIPLE} in "
                f"[{LIMITS['resolution'][0]}, {LIMITS['resolution'][1]}], got {self.resolution}"
            )
        if self.lora_targets not in LORA_TARGETS:
            raise FineTuneError(f"lora_targets: expected one of {', '.join(LORA_TARGETS)}, got {self.lora_targets!r}")
        if self.train_text_encoder and self.method != "dreambooth":
            raise FineTuneError(f"train_text_encoder: only the dreambooth method trains it, got method {self.method}")
        if self.prior_preservation and self.method == "textual_inversion":
            raise FineTuneError(
                "prior_preservation: applies to dreambooth and lora (textual_inversion leaves the class untouched)"
            )

    @classmethod
    def from_dict(cls, data: dict) -> FineTuneSettings:
        """Settings from JSON-like data (the API's, the admin's); unknown keys and wrong types are errors."""
        if not isinstance(data, dict):
            raise FineTuneError(f"settings: expected an object, got {type(data).__name__}")
        known = {spec.name for spec in dataclasses.fields(cls)}
        unknown = sorted(str(key) for key in data if key not in known)
        if unknown:
            raise FineTuneError(
                f"settings: unknown field(s) {', '.join(unknown)}; expected some of {', '.join(sorted(known))}"
            )
        if "method" not in data:
            raise FineTuneError(f"method: required, one of {', '.join(METHODS)}")
        values = dict(data)
        for name, value in values.items():
            _check_type(name, value, _TYPES[name])
            if _TYPES[name] is float and isinstance(value, int):
                values[name] = float(value)
        settings = cls(**values)
        settings.validate()
        return settings

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# The type each field takes; "optional" ones also take None.
_TYPES: dict[str, Any] = {
    "method": str,
    "steps": int,
    "learning_rate": (float, "optional"),
    "batch_size": int,
    "resolution": (int, "optional"),
    "lora_rank": int,
    "lora_targets": str,
    "train_text_encoder": bool,
    "prior_preservation": bool,
    "prior_loss_weight": float,
    "class_images": int,
    "checkpoint_every": int,
    "seed": int,
}
_TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _check_type(name: str, value: Any, expected: Any) -> None:
    optional = isinstance(expected, tuple)
    kind = expected[0] if optional else expected
    if value is None and optional:
        return
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if not ok:
        wanted = _TYPE_NAMES[kind] + (" or null" if optional else "")
        raise FineTuneError(f"{name}: expected {wanted}, got {value!r}")


@dataclass(frozen=True)
class Progress:
    """One training step done: ``step`` of ``total``, its loss, the speed so far and the time left."""

    step: int
    total: int
    loss: float
    steps_per_second: float
    eta_seconds: float | None


@dataclass(frozen=True)
class FineTuneResult:
    """Where the result went, in which format (the loaders' names), and how the run went."""

    output_dir: Path
    format: str  # "full" | "lora" | "textual_inversion"
    steps_done: int
    resumed_from: int | None
    wall_seconds: float
    manifest: dict = field(default_factory=dict)
