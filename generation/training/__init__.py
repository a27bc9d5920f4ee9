"""Fine-tuning for personalisation: DreamBooth (full), DreamBooth-LoRA and Textual Inversion (docs/training.md).

Importing the package is free; torch, diffusers and peft are imported when ``fine_tune`` runs.
"""

from generation.errors import FineTuneError, FineTuneStopped
from generation.training.settings import (
    DEFAULT_LEARNING_RATES,
    LIMITS,
    METHODS,
    FineTuneResult,
    FineTuneSettings,
    Progress,
)
from generation.training.train import fine_tune

__all__ = [
    "DEFAULT_LEARNING_RATES",
    "LIMITS",
    "METHODS",
    "FineTuneError",
    "FineTuneResult",
    "FineTuneSettings",
    "FineTuneStopped",
    "Progress",
    "fine_tune",
]
