"""Scoring generated images against their concept's reference photos: CLIP-IS, DINO-IS, CLIP-TS."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from generation.errors import GenerationError
from generation.metrics.arithmetic import per_image_similarity, text_similarity
from generation.metrics.embedders import DEFAULT_CLIP_MODEL, DEFAULT_DINO_MODEL, Embedder, get_embedder
from generation.metrics.images import load_rgb
from generation.metrics.texts import concept_category, concept_prompt, ts_prompts

TS_VARIANTS = ("without_class", "with_class")
DEFAULT_TS_VARIANT = "without_class"


@dataclass(frozen=True)
class ScoringItem:
    """One generated image and what it was generated from."""

    image: Any
    prompt_template: str
    concept_token: str
    superclass: str
    method: str = ""
    concept: str = ""
    prompt_set: str = ""
    seed_index: int | None = None
    item_id: str = ""

    @property
    def identity(self) -> str:
        if self.item_id:
            return self.item_id
        if isinstance(self.image, (str, os.PathLike)):
            return str(self.image)
        return f"{self.method}/{self.concept}/{self.prompt_template}/{self.seed_index}"


@dataclass(frozen=True)
class ImageScore:
    """Metrics of one generated image; ``error`` is set (and the metrics are None) when it failed."""

    item_id: str
    method: str
    concept: str
    category: str
    prompt_set: str
    prompt_template: str
    seed_index: int | None
    prompt: str | None = None
    clip_is: float | None = None
    dino_is: float | None = None
    clip_ts: float | None = None
    clip_ts_without_class: float | None = None
    clip_ts_with_class: float | None = None
    ts_variant: str = DEFAULT_TS_VARIANT
    ts_texts: dict[str, str] = field(default_factory=dict)
    text_truncated: bool = False
    error: str | None = None

    def ts(self, variant: str) -> float | None:
        """CLIP-TS of the named variant."""
        if variant not in TS_VARIANTS:
            raise ValueError(f"TS variant: expected one of {TS_VARIANTS}, got {variant!r}")
        return getattr(self, f"clip_ts_{variant}")

    def to_dict(self) -> dict:
        return asdict(self)


def score_images(
    items: Iterable[ScoringItem],
    references: Sequence | Mapping[str, Sequence],
    *,
    clip_model: str = DEFAULT_CLIP_MODEL,
    dino_model: str = DEFAULT_DINO_MODEL,
    device: str = "cpu",
    batch_size: int = 16,
    ts_variant: str = DEFAULT_TS_VARIANT,
    embedder: Embedder | None = None,
) -> list[ImageScore]:
    """Score each item against its concept's reference photos.

    ``references`` is one reference set (paths or PIL images) for all items, or a mapping
    from concept name to its set. Items that cannot be scored get an ``ImageScore`` with
    ``error`` set; the others are still scored.
    """
    if ts_variant not in TS_VARIANTS:
        raise ValueError(f"ts_variant: expected one of {TS_VARIANTS}, got {ts_variant!r}")
    items = list(items)
    if not isinstance(references, Mapping) and len(references) == 0:
        raise ValueError("reference set: expected at least one reference photo, got none")
    embedder = embedder or get_embedder(clip_model, dino_model, device=device, batch_size=batch_size)

    prepared, failures = _prepare_items(items, references)
    reference_sets = {}
    for concept, sources in _reference_sets_needed(prepared, references).items():
        reference_sets[concept] = embedder.reference_embeddings(sources)

    images = [entry.image for entry in prepared]
    clip_images = embedder.embed_clip_images(images) if images else None
    dino_images = embedder.embed_dino_images(images) if images else None
    embedder.images_embedded += len(images)
    texts = sorted({text for entry in prepared for text in entry.ts_texts.values()})
    text_embeddings, truncated = embedder.embed_texts(texts) if texts else (None, [])
    text_rows = {text: index for index, text in enumerate(texts)}
    truncated_texts = {text for text, cut in zip(texts, truncated, strict=True) if cut}

    scores: dict[int, ImageScore] = dict(failures)
    for row, entry in enumerate(prepared):
        refs = reference_sets[_reference_key(entry.item, references)]
        ts_values = {
            variant: float(text_similarity(text_embeddings[text_rows[text]], clip_images[row]))
            for variant, text in entry.ts_texts.items()
        }
        scores[entry.index] = replace(
            _base_score(entry.item),
            prompt=entry.prompt,
            clip_is=float(per_image_similarity(refs.clip, clip_images[row : row + 1])[0]),
            dino_is=float(per_image_similarity(refs.dino, dino_images[row : row + 1])[0]),
            clip_ts=ts_values[ts_variant],
            clip_ts_without_class=ts_values["without_class"],
            clip_ts_with_class=ts_values["with_class"],
            ts_variant=ts_variant,
            ts_texts=entry.ts_texts,
            text_truncated=any(text in truncated_texts for text in entry.ts_texts.values()),
        )
    return [scores[index] for index in range(len(items))]


@dataclass
class _PreparedItem:
    index: int
    item: ScoringItem
    image: Any
    prompt: str
    ts_texts: dict[str, str]


def _prepare_items(items: list[ScoringItem], references) -> tuple[list[_PreparedItem], dict[int, ImageScore]]:
    prepared, failures = [], {}
    for index, item in enumerate(items):
        try:
            prompt = concept_prompt(item.prompt_template, item.concept_token, item.superclass)
            texts = ts_prompts(item.prompt_template, item.superclass)
            _reference_sources(item, references)
            image = load_rgb(item.image)
        except (ValueError, OSError, KeyError, GenerationError) as error:
            message = error.args[0] if isinstance(error, KeyError) else str(error)
            failures[index] = replace(_base_score(item), error=f"item {item.identity}: {message}")
            continue
        prepared.append(_PreparedItem(index, item, image, prompt, texts))
    return prepared, failures


def _reference_key(item: ScoringItem, references) -> str:
    return item.concept if isinstance(references, Mapping) else ""


def _reference_sources(item: ScoringItem, references) -> Sequence:
    if not isinstance(references, Mapping):
        return references
    if item.concept not in references:
        raise KeyError(
            f"reference set: expected photos for concept {item.concept!r}, got none "
            f"(known concepts: {sorted(references)})"
        )
    sources = references[item.concept]
    if len(sources) == 0:
        raise ValueError(f"reference set of concept {item.concept!r}: expected at least one photo, got none")
    return sources


def _reference_sets_needed(prepared: list[_PreparedItem], references) -> dict[str, Sequence]:
    needed = {}
    for entry in prepared:
        key = _reference_key(entry.item, references)
        needed.setdefault(key, _reference_sources(entry.item, references))
    return needed


def _base_score(item: ScoringItem) -> ImageScore:
    return ImageScore(
        item_id=item.identity,
        method=item.method,
        concept=item.concept,
        category=concept_category(item.superclass),
        prompt_set=item.prompt_set,
        prompt_template=item.prompt_template,
        seed_index=item.seed_index,
    )
