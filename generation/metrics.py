"""Automatic metrics of personalized generation: CLIP-IS, DINO-IS and CLIP-TS.

Definitions, preprocessing and aggregation follow the "Beyond Fine-Tuning" reference
evaluator (samplers-spec.md section 4); docs/metrics.md lists every deviation.

* CLIP-IS / DINO-IS: mean cosine over all (reference, generated) pairs of image embeddings.
* CLIP-TS: cosine between the generated image and the prompt text, in two variants:
  ``without_class`` (the concept phrase removed, the reference trainer's "TS", the default)
  and ``with_class`` (the superclass word in the concept phrase's place).

torch and transformers are imported inside functions only.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from generation.errors import GenerationError, ModelLoadError, PromptError

DEFAULT_CLIP_MODEL = "openai/clip-vit-base-patch32"
DEFAULT_DINO_MODEL = "facebook/dinov2-small"
TS_VARIANTS = ("without_class", "with_class")
DEFAULT_TS_VARIANT = "without_class"
PLACEHOLDER = "{concept}"
REFERENCE_RESOLUTION = 512
CLIP_CONTEXT_LENGTH = 77
DINO_MODEL_TYPES = frozenset({"dinov2", "dinov2_with_registers"})
LIVE_SUPERCLASSES = frozenset({"cat", "dog"})
ALL = "*"
METRIC_NAMES = ("clip_is", "dino_is", "clip_ts", "clip_ts_without_class", "clip_ts_with_class")


# ---------------------------------------------------------------------------
# Pure arithmetic on embeddings
# ---------------------------------------------------------------------------


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length."""
    vectors = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError("embeddings: expected non-zero vectors, got a zero row")
    return vectors / norms


def cosine_matrix(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """(L, D) x (R, D) -> (L, R) matrix of cosines."""
    return l2_normalize(np.atleast_2d(left)) @ l2_normalize(np.atleast_2d(right)).T


def image_similarity(references: np.ndarray, generated: np.ndarray) -> float:
    """Mean of the full reference-by-generated cosine matrix (the reference IS of one prompt)."""
    return float(cosine_matrix(references, generated).mean())


def per_image_similarity(references: np.ndarray, generated: np.ndarray) -> np.ndarray:
    """Per generated image, the mean cosine to all references; their mean equals ``image_similarity``."""
    return cosine_matrix(references, generated).mean(axis=0)


def text_similarity(texts: np.ndarray, images: np.ndarray) -> np.ndarray:
    """Row-wise cosine between paired text and image embeddings."""
    return np.sum(l2_normalize(texts) * l2_normalize(images), axis=-1)


def harmonic_mean(image_score: float, text_score: float) -> float:
    """2 / (1/IS + 1/TS), the reference trainer's single validation number."""
    if image_score <= 0 or text_score <= 0:
        return 0.0
    return 2.0 / (1.0 / image_score + 1.0 / text_score)


# ---------------------------------------------------------------------------
# Prompts
# ---------------------------------------------------------------------------


def placeholder_of(template: str) -> str:
    """The ``{concept}`` placeholder, checked to occur exactly once in the template."""
    count = template.count(PLACEHOLDER) if isinstance(template, str) else 0
    if count != 1:
        raise PromptError(f"prompt template {template!r}: expected exactly one {PLACEHOLDER} placeholder, "
                          f"found {count}")
    return PLACEHOLDER


def concept_prompt(template: str, concept_token: str, superclass: str) -> str:
    """The generation prompt: "a {concept} in the jungle" -> "a sks dog in the jungle"."""
    return template.replace(placeholder_of(template), f"{concept_token} {superclass}".strip())


def prompt_without_concept(template: str) -> str:
    """The concept phrase removed with one adjacent space: "a sks dog in the jungle" -> "a in the jungle"."""
    placeholder = placeholder_of(template)
    for pattern in (placeholder + " ", " " + placeholder, placeholder):
        if pattern in template:
            return template.replace(pattern, "", 1)
    raise AssertionError("unreachable")


def prompt_with_superclass(template: str, superclass: str) -> str:
    """The superclass word in the concept phrase's place: "a dog in the jungle"."""
    return template.replace(placeholder_of(template), superclass)


def ts_prompts(template: str, superclass: str) -> dict[str, str]:
    """The text of each CLIP-TS variant, keyed by variant name."""
    return {
        "without_class": prompt_without_concept(template),
        "with_class": prompt_with_superclass(template, superclass),
    }


def concept_category(superclass: str) -> str:
    """'live' for cats and dogs, 'object' for everything else (the paper's split)."""
    return "live" if superclass.strip().lower() in LIVE_SUPERCLASSES else "object"


# ---------------------------------------------------------------------------
# Preprocessing (reference recipe, no torchvision)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Preprocessing:
    """Resize the shorter side to ``resize``, centre-crop ``crop``, normalise."""

    resize: int
    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def from_image_processor(cls, processor) -> Preprocessing:
        size = processor.size
        resize = size.get("shortest_edge") or min(size.get("height", 0), size.get("width", 0))
        crop_size = processor.crop_size or {"height": resize}
        return cls(int(resize), int(crop_size["height"]), tuple(processor.image_mean), tuple(processor.image_std))


def resized_shape(height: int, width: int, shorter_side: int) -> tuple[int, int]:
    """Shorter side to ``shorter_side``, longer side scaled and truncated (torchvision's Resize(int))."""
    if height <= width:
        return shorter_side, int(shorter_side * width / height)
    return int(shorter_side * height / width), shorter_side


def crop_box(height: int, width: int, crop: int) -> tuple[int, int]:
    """Top-left corner of a centred crop (torchvision's rounding)."""
    return int(round((height - crop) / 2.0)), int(round((width - crop) / 2.0))


def clip_pixels(image, preprocessing: Preprocessing, is_reference: bool) -> np.ndarray:
    """(3, crop, crop) float32: references squashed to 512x512 with PIL bicubic first, then
    a tensor bicubic resize with antialias off, centre crop and CLIP normalisation."""
    import torch
    from PIL import Image

    if is_reference:
        image = image.resize((REFERENCE_RESOLUTION, REFERENCE_RESOLUTION), Image.BICUBIC)
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    height, width = resized_shape(pixels.shape[-2], pixels.shape[-1], preprocessing.resize)
    if (height, width) != tuple(pixels.shape[-2:]):
        pixels = torch.nn.functional.interpolate(
            pixels, size=(height, width), mode="bicubic", align_corners=False, antialias=False
        )
    return _crop_and_normalise(pixels[0].numpy(), preprocessing)


def dino_pixels(image, preprocessing: Preprocessing) -> np.ndarray:
    """(3, crop, crop) float32: PIL bicubic resize (antialiased), centre crop, ImageNet normalisation."""
    from PIL import Image

    height, width = resized_shape(image.height, image.width, preprocessing.resize)
    resized = image.resize((width, height), Image.BICUBIC)
    pixels = np.asarray(resized, dtype=np.float32).transpose(2, 0, 1) / 255.0
    return _crop_and_normalise(pixels, preprocessing)


def _crop_and_normalise(pixels: np.ndarray, preprocessing: Preprocessing) -> np.ndarray:
    crop = preprocessing.crop
    _, height, width = pixels.shape
    if height < crop or width < crop:
        raise ValueError(f"image: expected at least {crop}x{crop} pixels after resizing, got {width}x{height}")
    top, left = crop_box(height, width, crop)
    pixels = pixels[:, top : top + crop, left : left + crop]
    mean = np.asarray(preprocessing.mean, dtype=np.float32)[:, None, None]
    std = np.asarray(preprocessing.std, dtype=np.float32)[:, None, None]
    return ((pixels - mean) / std).astype(np.float32)


def load_rgb(source) -> Any:
    """A PIL RGB image from a path or a PIL image; errors name the path."""
    from PIL import Image

    if isinstance(source, Image.Image):
        return source.convert("RGB")
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"image {path}: expected an image file, got nothing at that path")
    try:
        with Image.open(path) as opened:
            return opened.convert("RGB")
    except Exception as error:
        raise ValueError(f"image {path}: expected a readable image, got {type(error).__name__}: {error}") from error


def content_hash(source) -> str:
    """sha256 of a file's bytes, or of a PIL image's mode, size and pixels."""
    from PIL import Image

    digest = hashlib.sha256()
    if isinstance(source, Image.Image):
        digest.update(f"{source.mode}{source.size}".encode())
        digest.update(source.tobytes())
    else:
        digest.update(Path(source).read_bytes())
    return digest.hexdigest()


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------


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
        raise ModelLoadError(f"{expected} model {source}: expected a hub id or a save_pretrained folder, "
                      f"got {type(error).__name__}: {error}") from error


class Embedder:
    """Loads CLIP and DINOv2 (hub id or local folder) and embeds images and texts in batches.

    Reference photos are cached by content hash: ``reference_embeddings`` embeds each
    distinct photo once per model for the embedder's lifetime (``references_embedded``
    counts the photos actually run through the models).
    """

    def __init__(self, clip_model: str = DEFAULT_CLIP_MODEL, dino_model: str = DEFAULT_DINO_MODEL,
                 device: str = "cpu", batch_size: int = 16):
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
                raise ModelLoadError(f"DINO model {self.dino_source}: expected a DINOv2 model, "
                                     f"got model_type {model.config.model_type!r}")
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
        return self._embed([dino_pixels(image, preprocessing) for image in images],
                           lambda pixels: model(pixel_values=pixels).pooler_output)

    def embed_texts(self, texts: Sequence[str]) -> tuple[np.ndarray, list[bool]]:
        """(N, D) unit-length CLIP text embeddings and, per text, whether it was cut to 77 tokens."""
        import torch

        model, tokenizer, _ = self._clip_parts()
        lengths = [len(ids) for ids in tokenizer(list(texts), truncation=False)["input_ids"]]
        truncated = [length > CLIP_CONTEXT_LENGTH for length in lengths]
        rows = []
        for start in range(0, len(texts), self.batch_size):
            batch = tokenizer(list(texts[start : start + self.batch_size]), padding="max_length",
                              max_length=CLIP_CONTEXT_LENGTH, truncation=True, return_tensors="pt")
            with torch.inference_mode():
                features = _pooled(model.get_text_features(input_ids=batch["input_ids"].to(self.device),
                                                           attention_mask=batch["attention_mask"].to(self.device)))
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
        missing = {digest: source for digest, source in zip(hashes, references)
                   if ("clip", digest) not in self._reference_cache}
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


def get_embedder(clip_model: str = DEFAULT_CLIP_MODEL, dino_model: str = DEFAULT_DINO_MODEL,
                 device: str = "cpu", batch_size: int = 16) -> Embedder:
    """One embedder per (models, device) per process, so models and reference embeddings stay loaded."""
    key = (str(clip_model), str(dino_model), device)
    if key not in _EMBEDDERS:
        _EMBEDDERS[key] = Embedder(clip_model, dino_model, device=device, batch_size=batch_size)
    _EMBEDDERS[key].batch_size = batch_size
    return _EMBEDDERS[key]


# ---------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------


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


def score_images(items: Iterable[ScoringItem], references: Sequence | Mapping[str, Sequence], *,
                 clip_model: str = DEFAULT_CLIP_MODEL, dino_model: str = DEFAULT_DINO_MODEL,
                 device: str = "cpu", batch_size: int = 16, ts_variant: str = DEFAULT_TS_VARIANT,
                 embedder: Embedder | None = None) -> list[ImageScore]:
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
    truncated_texts = {text for text, cut in zip(texts, truncated) if cut}

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
        raise KeyError(f"reference set: expected photos for concept {item.concept!r}, got none "
                       f"(known concepts: {sorted(references)})")
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
        item_id=item.identity, method=item.method, concept=item.concept,
        category=concept_category(item.superclass), prompt_set=item.prompt_set,
        prompt_template=item.prompt_template, seed_index=item.seed_index,
    )


# ---------------------------------------------------------------------------
# Aggregation
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricStats:
    mean: float
    std: float


@dataclass(frozen=True)
class GroupSummary:
    """Metrics of one (method, concept, prompt set) group, or an aggregate where a field is ``*``.

    Concept level: mean and population std over the set's prompts of per-prompt means.
    Across concepts (``concept == "*"``): mean and std over concepts of the concept-level means.
    """

    method: str
    category: str
    concept: str
    prompt_set: str
    n_images: int
    n_prompts: int
    n_concepts: int
    n_errors: int
    metrics: dict[str, MetricStats]

    def mean(self, metric: str) -> float:
        return self.metrics[metric].mean

    def to_dict(self) -> dict:
        row = asdict(self)
        row["metrics"] = {name: {"mean": stats.mean, "std": stats.std} for name, stats in self.metrics.items()}
        return row

    @classmethod
    def from_dict(cls, row: Mapping) -> GroupSummary:
        metrics = {name: MetricStats(**stats) for name, stats in row["metrics"].items()}
        return cls(**{**row, "metrics": metrics})


def mean_and_std(values: Sequence[float]) -> MetricStats:
    """Mean and population std (numpy's default, ddof=0)."""
    array = np.asarray(values, dtype=np.float64)
    return MetricStats(float(array.mean()), float(array.std()))


def summarize(scores: Iterable[ImageScore]) -> list[GroupSummary]:
    """Per (method, concept, prompt set) and aggregated over concepts (all, live, object) and sets."""
    scores = list(scores)
    rows: list[GroupSummary] = []
    for method in sorted({score.method for score in scores}):
        of_method = [score for score in scores if score.method == method]
        prompt_sets = sorted({score.prompt_set for score in of_method})
        for prompt_set in prompt_sets + ([ALL] if len(prompt_sets) > 1 else []):
            in_set = [s for s in of_method if prompt_set == ALL or s.prompt_set == prompt_set]
            concept_rows = [row for concept in sorted({s.concept for s in in_set})
                            if (row := _concept_row(method, concept, prompt_set,
                                                    [s for s in in_set if s.concept == concept]))]
            rows += concept_rows
            rows += _across_concepts(method, prompt_set, concept_rows)
    return rows


def _concept_row(method: str, concept: str, prompt_set: str, scores: list[ImageScore]) -> GroupSummary | None:
    scored = [score for score in scores if score.error is None]
    if not scored:
        return None
    by_prompt: dict[tuple[str, str], list[ImageScore]] = defaultdict(list)
    for score in scored:
        by_prompt[(score.prompt_set, score.prompt_template)].append(score)
    metrics = {}
    for name in METRIC_NAMES:
        per_prompt = [np.mean([getattr(s, name) for s in group]) for group in by_prompt.values()]
        metrics[name] = mean_and_std(per_prompt)
    return GroupSummary(method, scored[0].category, concept, prompt_set, n_images=len(scored),
                        n_prompts=len(by_prompt), n_concepts=1, n_errors=len(scores) - len(scored),
                        metrics=metrics)


def _across_concepts(method: str, prompt_set: str, concept_rows: list[GroupSummary]) -> list[GroupSummary]:
    groups = {ALL: concept_rows}
    for category in ("live", "object"):
        groups[category] = [row for row in concept_rows if row.category == category]
    rows = []
    for category, members in groups.items():
        if not members:
            continue
        metrics = {name: mean_and_std([row.mean(name) for row in members]) for name in METRIC_NAMES}
        rows.append(GroupSummary(
            method, category, ALL, prompt_set,
            n_images=sum(row.n_images for row in members), n_prompts=sum(row.n_prompts for row in members),
            n_concepts=len(members), n_errors=sum(row.n_errors for row in members), metrics=metrics))
    return rows


def overall(rows: Iterable[GroupSummary], method: str, category: str = ALL) -> GroupSummary:
    """The row over all concepts (of a category) and all prompt sets of a method."""
    candidates = [row for row in rows if row.method == method and row.concept == ALL and row.category == category]
    if not candidates:
        raise KeyError(f"summary: expected rows of method {method!r}, category {category!r}, got none")
    everything = [row for row in candidates if row.prompt_set == ALL]
    return everything[0] if everything else candidates[0]
