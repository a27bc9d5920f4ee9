"""Per-backbone glue: encode prompts into conditioning, call the denoiser, decode latents.

The loop and the samplers speak of branches and noise predictions; how a prompt becomes what the
denoiser is conditioned on, and how the denoiser is called, depends on the backbone:

* ``sd`` (Stable Diffusion 1.x / 2.x): one CLIP text encoder, ``UNet2DConditionModel``;
* ``sdxl`` (SD-XL): two CLIP text encoders whose penultimate hidden states are concatenated, the
  second one's pooled embedding plus six time ids (original size, crop corner, target size) as
  added conditioning; an empty unconditional prompt is all zeros when the pipeline says
  ``force_zeros_for_empty_prompt``, as diffusers does;
* ``pixart_alpha`` (PixArt-alpha): a T5 encoder with its padding masked (the mask goes to every
  cross-attention layer), ``PixArtTransformer2DModel``, whose learned-sigma output keeps only its
  noise half.

Every backbone runs every sampler through the same loop with a DDIM scheduler built from the
pipeline's own schedule; ``generation.samplers`` and the attention processors need nothing else.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from generation.errors import ModelLoadError
from generation.prompts import token_count

logger = logging.getLogger(__name__)

SD = "sd"
SDXL = "sdxl"
PIXART_ALPHA = "pixart_alpha"

# diffusers pipeline class -> backbone
PIPELINE_CLASSES = {
    "StableDiffusionPipeline": SD,
    "StableDiffusionXLPipeline": SDXL,
    "PixArtAlphaPipeline": PIXART_ALPHA,
}
BACKBONE_NAMES = {SD: "Stable Diffusion 1.x/2.x", SDXL: "SD-XL", PIXART_ALPHA: "PixArt-alpha"}


def backbone_for_class(class_name: str, source: str = "model") -> str:
    """The backbone of a diffusers pipeline class name; ModelLoadError for any other pipeline."""
    try:
        return PIPELINE_CLASSES[class_name]
    except KeyError:
        raise ModelLoadError(
            f"{source}: expected a {', '.join(PIPELINE_CLASSES)} pipeline, got {class_name or 'no _class_name'}"
        ) from None


@dataclass
class Conditioning:
    """What one prompt conditions the denoiser on: text hidden states plus per-backbone extras.

    Every tensor has the batch on its first axis; ``rows(n)`` expands a one-row conditioning to n
    rows, ``concat`` joins the conditionings of a call's branches in order.
    """

    hidden: Any  # (rows, tokens, width)
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def batch(self) -> int:
        return self.hidden.shape[0]

    def rows(self, count: int) -> Conditioning:
        if self.batch == count:
            return self
        if self.batch != 1:
            raise ValueError(f"conditioning: expected 1 or {count} rows, got {self.batch}")
        return Conditioning(
            self.hidden.expand(count, *self.hidden.shape[1:]),
            {name: value.expand(count, *value.shape[1:]) for name, value in self.extras.items()},
        )

    @staticmethod
    def concat(parts: list[Conditioning]) -> Conditioning:
        import torch

        return Conditioning(
            torch.cat([part.hidden for part in parts]),
            {name: torch.cat([part.extras[name] for part in parts]) for name in parts[0].extras},
        )

    def select(self, index: int) -> Conditioning:
        return Conditioning(self.hidden[index : index + 1], {k: v[index : index + 1] for k, v in self.extras.items()})


@dataclass(frozen=True)
class Encoded:
    conditioning: dict[str, Conditioning]  # per text, one row each
    truncated: bool


class Backbone:
    """SD 1.x / 2.x: one CLIP encoder's last hidden states; ``unet(x, t, encoder_hidden_states)``."""

    name = SD

    def __init__(self, pipeline):
        self.pipeline = pipeline

    @property
    def denoiser(self):
        return self.pipeline.unet

    @property
    def tokenizer(self):
        return self.pipeline.tokenizer

    @property
    def latent_size(self) -> tuple[int, int]:
        size = self.denoiser.config.sample_size
        return (size, size) if isinstance(size, int) else tuple(size)

    @property
    def latent_channels(self) -> int:
        return self.denoiser.config.in_channels

    def encode(self, texts: list[str]) -> Encoded:
        """One-row conditioning per distinct text; long prompts are truncated and logged."""
        import torch

        distinct = list(dict.fromkeys(texts))
        too_long = [self._warn_if_long(text) for text in distinct]  # a warning for each, not just the first
        truncated = any(too_long)
        with torch.inference_mode():
            rows = self._encode_rows(distinct)
        return Encoded({text: rows.select(i) for i, text in enumerate(distinct)}, truncated)

    def _warn_if_long(self, text: str) -> bool:
        limit = self.tokenizer.model_max_length
        count = token_count(self.tokenizer, text)
        if count > limit:
            logger.warning("prompt %r has %d tokens; truncated to %d", text, count, limit)
        return count > limit

    def _token_ids(self, tokenizer, texts: list[str]):
        return tokenizer(
            texts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
        )

    def _encode_rows(self, texts: list[str]) -> Conditioning:
        encoder = self.pipeline.text_encoder
        ids = self._token_ids(self.tokenizer, texts).input_ids.to(encoder.device)
        return Conditioning(encoder(ids)[0].to(self.denoiser.dtype))

    def denoise(self, latents, timestep, conditioning: Conditioning, module=None):
        """The noise prediction (or v / sample, as the scheduler is configured) for each row.

        ``module`` replaces the denoiser module as the thing called (its eager forward, say).
        """
        return (self.denoiser if module is None else module)(
            latents, timestep, encoder_hidden_states=conditioning.hidden
        ).sample

    def decode(self, latents) -> list:
        """VAE-decode latents into PIL images (in float32 where the VAE asks to be upcast)."""
        import torch

        vae = self.pipeline.vae
        if vae.dtype == torch.float16 and getattr(vae.config, "force_upcast", False):
            vae = vae.to(torch.float32)
            self.pipeline.vae = vae
        pixels = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor).sample
        return self.pipeline.image_processor.postprocess(pixels, output_type="pil")


class SDXLBackbone(Backbone):
    """SD-XL: two CLIP encoders (penultimate layers, concatenated), pooled embedding and time ids."""

    name = SDXL

    def _encode_rows(self, texts: list[str]) -> Conditioning:
        import torch

        pipeline = self.pipeline
        hidden, pooled = [], None
        for tokenizer, encoder in (
            (pipeline.tokenizer, pipeline.text_encoder),
            (pipeline.tokenizer_2, pipeline.text_encoder_2),
        ):
            ids = self._token_ids(tokenizer, texts).input_ids.to(encoder.device)
            output = encoder(ids, output_hidden_states=True)
            hidden.append(output.hidden_states[-2])
            pooled = output[0]  # the second encoder's projected pooled embedding
        states, pooled = torch.cat(hidden, dim=-1), pooled
        if getattr(pipeline.config, "force_zeros_for_empty_prompt", False):
            empty = torch.tensor([text == "" for text in texts], device=states.device)
            states = torch.where(empty[:, None, None], torch.zeros_like(states), states)
            pooled = torch.where(empty[:, None], torch.zeros_like(pooled), pooled)
        dtype = self.denoiser.dtype
        time_ids = torch.tensor([self._time_ids()] * len(texts), device=states.device, dtype=dtype)
        return Conditioning(states.to(dtype), {"text_embeds": pooled.to(dtype), "time_ids": time_ids})

    def _time_ids(self) -> list[int]:
        height, width = (side * self.pipeline.vae_scale_factor for side in self.latent_size)
        return [height, width, 0, 0, height, width]  # original size, crop top-left, target size

    def denoise(self, latents, timestep, conditioning: Conditioning, module=None):
        return (self.denoiser if module is None else module)(
            latents, timestep, encoder_hidden_states=conditioning.hidden, added_cond_kwargs=conditioning.extras
        ).sample


class PixArtBackbone(Backbone):
    """PixArt-alpha: T5 with a padding mask; a transformer denoiser with learned sigma."""

    name = PIXART_ALPHA

    @property
    def denoiser(self):
        return self.pipeline.transformer

    def _encode_rows(self, texts: list[str]) -> Conditioning:
        encoder = self.pipeline.text_encoder
        tokens = self._token_ids(self.tokenizer, texts)
        mask = tokens.attention_mask.to(encoder.device)
        states = encoder(tokens.input_ids.to(encoder.device), attention_mask=mask)[0]
        return Conditioning(states.to(self.denoiser.dtype), {"attention_mask": mask})

    def denoise(self, latents, timestep, conditioning: Conditioning, module=None):
        import torch

        transformer = self.denoiser
        rows = latents.shape[0]
        timesteps = torch.as_tensor(timestep, device=latents.device).reshape(-1).expand(rows)
        added = {"resolution": None, "aspect_ratio": None}
        if getattr(transformer, "use_additional_conditions", False):
            height, width = (side * self.pipeline.vae_scale_factor for side in self.latent_size)
            added = {
                "resolution": torch.tensor([[height, width]] * rows, device=latents.device, dtype=latents.dtype),
                "aspect_ratio": torch.tensor([[height / width]] * rows, device=latents.device, dtype=latents.dtype),
            }
        output = (transformer if module is None else module)(
            latents,
            encoder_hidden_states=conditioning.hidden,
            encoder_attention_mask=conditioning.extras["attention_mask"],
            timestep=timesteps,
            added_cond_kwargs=added,
        ).sample
        if output.shape[1] == 2 * latents.shape[1]:  # learned sigma: keep the prediction, drop the variance
            output = output[:, : latents.shape[1]]
        return output


_BACKBONES = {SD: Backbone, SDXL: SDXLBackbone, PIXART_ALPHA: PixArtBackbone}


def backbone_of(pipeline) -> Backbone:
    """The backbone adapter for a loaded diffusers pipeline."""
    return _BACKBONES[backbone_for_class(type(pipeline).__name__, f"pipeline {type(pipeline).__name__}")](pipeline)
