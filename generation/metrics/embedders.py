"""CLIP and DINOv2, loaded from a hub id or a local folder, embedding images and texts in batches."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from generation.errors import ModelLoadError
from generation.metrics.arithmetic import l2_normalize
from generation.metrics.images import Preprocessing, clip_pixels, content_hash, dino_pixels, load_rgb

DEFAULT_CLIP_MODEL = "openai/clip-vit-base-patch32"
DEFAULT_DINO_MODEL = "facebook/dinov2-small"
CLIP_CONTEXT_LENGTH = 77
DINO_MODEL_TYPES = frozenset({"dinov2", "dinov2_with_registers"})


def _check_model_source(name_or_path: str | os.PathLike, expected: str) -> str:
    text = str(name_or_path)
    path = Path(text).expanduser()
    looks_local = path.is_absolute() or text.startswith((".", "~")) or path.exists()
    if looks_local and not (path / "config.json").is_file():
        raise ModelLoadError(
            f"{expected} model {path}: expected a folder with config.json and preprocessor_config.json "
            f"(save_pretrained layout), got {'no such folder' if not path.exists() else 'no config.json'}"
        )
    return str(path) if looks_local else text


def _load(loader, source: str, expected: str):
    from generation.pipelines import quiet_loading

    quiet_loading()
    try:
        return loader(source)
    except Exception as error:
        raise ModelLoadError(
            f"{expected} model {source}: expected a hub id or a save_pretrained folder, "
            f"got {type(error).__name__}: {error}"
        ) from error


class Embedder:
    """Loads CLIP and DINOv2 (hub id or local folder) and embeds images and texts in batches.

    Reference photos are cached by content hash: ``reference_embeddings`` embeds each
    distinct photo once per model for the embedder's lifetime (``references_embedded``
    counts the photos actually run through the models).
    """

    def __init__(
        self,
        clip_model: str = DEFAULT_CLIP_MODEL,
        dino_model: str = DEFAULT_DINO_MODEL,
        device: str = "cpu",
        batch_size: int = 16,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size: expected a positive integer, got {batch_size}")
        self.clip_source = _check_model_source(clip_model, "CLIP")
        self.dino_source = _check_model_source(dino_model, "DINO")
        self.device = device
        self.batch_size = batch_size
        self.references_embedded = 0
        self.images_embedded = 0
        self._reference_cache: dict[tuple[str, str], np.ndarray] = {}
        self._clip = None
        self._dino = None

    # -- loading -----------------------------------------------------------
    def _clip_parts(self):
        if self._clip is None:
            from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

            model = _load(CLIPModel.from_pretrained, self.clip_source, "CLIP").to(self.device).eval()
            tokenizer = _load(AutoTokenizer.from_pretrained, self.clip_source, "CLIP tokenizer of")
            processor = _load(AutoImageProcessor.from_pretrained, self.clip_source, "CLIP preprocessing of")
            self._clip = (model, tokenizer, Preprocessing.from_image_processor(processor))
        return self._clip

    def _dino_parts(self):
        if self._dino is None:
            from transformers import AutoImageProcessor, AutoModel

            model = _load(AutoModel.from_pretrained, self.dino_source, "DINO").to(self.device).eval()
            if model.config.model_type not in DINO_MODEL_TYPES:
                raise ModelLoadError(
                    f"DINO model {self.dino_source}: expected a DINOv2 model, "
                    f"got model_type {model.config.model_type!r}"
                )
            processor = _load(AutoImageProcessor.from_pretrained, self.dino_source, "DINO preprocessing of")
            self._dino = (model, Preprocessing.from_image_processor(processor))
        return self._dino

    # -- embedding ---------------------------------------------------------
    def embed_clip_images(self, images: Sequence, is_reference: bool = False) -> np.ndarray:
        """(N, D) unit-length CLIP image embeddings of PIL RGB images."""
        model, _, preprocessing = self._clip_parts()

        def forward(pixels):
            return _pooled(model.get_image_features(pixel_values=pixels))

        return self._embed([clip_pixels(image, preprocessing, is_reference) for image in images], forward)

    def embed_dino_images(self, images: Sequence) -> np.ndarray:
        """(N, D) unit-length DINOv2 CLS embeddings (final LayerNorm, ``pooler_output``)."""
        model, preprocessing = self._dino_parts()
        return self._embed(
            [dino_pixels(image, preprocessing) for image in images],
            lambda pixels: model(pixel_values=pixels).pooler_output,
        )

    def embed_texts(self, texts: Sequence[str]) -> tuple[np.ndarray, list[bool]]:
        """(N, D) unit-length CLIP text embeddings and, per text, whether it was cut to 77 tokens."""
        import torch

        model, tokenizer, _ = self._clip_parts()
        lengths = [len(ids) for ids in tokenizer(list(texts), truncation=False)["input_ids"]]
        truncated = [length > CLIP_CONTEXT_LENGTH for length in lengths]
        rows = []
        for start in range(0, len(texts), self.batch_size):
            batch = tokenizer(
                list(texts[start : start + self.batch_size]),
                padding="max_length",
                max_length=CLIP_CONTEXT_LENGTH,
                truncation=True,
                return_tensors="pt",
            )
            with torch.inference_mode():
                features = _pooled(
                    model.get_text_features(
                        input_ids=batch["input_ids"].to(self.device),
                        attention_mask=batch["attention_mask"].to(self.device),
                    )
                )
            rows.append(features.float().cpu().numpy())
        return _stack_normalised(rows), truncated

    def _embed(self, pixel_arrays: list[np.ndarray], forward) -> np.ndarray:
        import torch

        rows = []
        for start in range(0, len(pixel_arrays), self.batch_size):
            pixels = torch.from_numpy(np.stack(pixel_arrays[start : start + self.batch_size])).to(self.device)
            with torch.inference_mode():
                rows.append(forward(pixels).float().cpu().numpy())
        return _stack_normalised(rows)

    # -- references --------------------------------------------------------
    def reference_embeddings(self, references: Sequence) -> ReferenceEmbeddings:
        """CLIP and DINO embeddings of a reference set, each photo embedded once per embedder."""
        if len(references) == 0:
            raise ValueError("reference set: expected at least one reference photo, got none")
        hashes = [content_hash(source) for source in references]
        missing = {
            digest: source
            for digest, source in zip(hashes, references, strict=True)
            if ("clip", digest) not in self._reference_cache
        }
        if missing:
            images = [load_rgb(source) for source in missing.values()]
            clip = self.embed_clip_images(images, is_reference=True)
            dino = self.embed_dino_images(images)
            for index, digest in enumerate(missing):
                self._reference_cache[("clip", digest)] = clip[index]
                self._reference_cache[("dino", digest)] = dino[index]
            self.references_embedded += len(missing)
        return ReferenceEmbeddings(
            clip=np.stack([self._reference_cache[("clip", digest)] for digest in hashes]),
            dino=np.stack([self._reference_cache[("dino", digest)] for digest in hashes]),
        )


@dataclass(frozen=True)
class ReferenceEmbeddings:
    clip: np.ndarray
    dino: np.ndarray


def _pooled(output):
    """get_*_features returns a tensor in older transformers, an output object in newer ones."""
    return output if hasattr(output, "float") else output.pooler_output


def _stack_normalised(rows: list[np.ndarray]) -> np.ndarray:
    return l2_normalize(np.concatenate(rows, axis=0)) if rows else np.zeros((0, 0))


_EMBEDDERS: dict[tuple, Embedder] = {}


def get_embedder(
    clip_model: str = DEFAULT_CLIP_MODEL,
    dino_model: str = DEFAULT_DINO_MODEL,
    device: str = "cpu",
    batch_size: int = 16,
) -> Embedder:
    """One embedder per (models, device) per process, so models and reference embeddings stay loaded."""
    key = (str(clip_model), str(dino_model), device)
    if key not in _EMBEDDERS:
        _EMBEDDERS[key] = Embedder(clip_model, dino_model, device=device, batch_size=batch_size)
    _EMBEDDERS[key].batch_size = batch_size
    return _EMBEDDERS[key]
