"""Exceptions raised by the generation library."""

from __future__ import annotations


class GenerationError(Exception):
    """Base class for every error this library raises on purpose."""


class ParameterError(GenerationError, ValueError):
    """A sampler name or hyper-parameter is unknown, of the wrong type or out of range."""


class PromptError(GenerationError, ValueError):
    """A prompt template or concept phrase cannot be used."""


class ModelLoadError(GenerationError):
    """A base model or personalization could not be loaded; names the path and the expected layout."""


class MixedPromptsError(GenerationError):
    """A sampler that reads one prompt's token positions was given a batch of several prompts."""


class BackboneError(GenerationError, ValueError):
    """A sampler or option does not apply to the model's backbone (SD, SD-XL, PixArt-alpha)."""


class FineTuneError(GenerationError, ValueError):
    """Fine-tuning cannot start or finish because of its input: photos, base model, settings, disk."""


class FineTuneStopped(Exception):
    """Fine-tuning stopped because ``should_stop()`` said so, after writing a checkpoint to resume from."""

    def __init__(self, message: str, step: int, checkpoint=None):
        super().__init__(message)
        self.step = step
        self.checkpoint = checkpoint
