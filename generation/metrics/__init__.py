"""Automatic metrics of personalized generation: CLIP-IS, DINO-IS and CLIP-TS.

Definitions, preprocessing and aggregation follow the "Beyond Fine-Tuning" reference
evaluator; docs/metrics.md lists every deviation.

* CLIP-IS / DINO-IS: mean cosine over all (reference, generated) pairs of image embeddings.
* CLIP-TS: cosine between the generated image and the prompt text, in two variants:
  ``without_class`` (the concept phrase removed, the reference trainer's "TS", the default)
  and ``with_class`` (the superclass word in the concept phrase's place).

Modules: ``arithmetic`` (cosines), ``texts`` (the TS texts), ``images`` (preprocessing),
``embedders`` (CLIP and DINOv2), ``scoring`` (per image), ``summaries`` (per method, concept and
set), ``cli`` (``python -m generation metrics`` and ``pareto``). torch and transformers are imported
inside functions only.
"""

from generation.metrics.embedders import (
    DEFAULT_CLIP_MODEL,
    DEFAULT_DINO_MODEL,
    Embedder,
    ReferenceEmbeddings,
    get_embedder,
)
from generation.metrics.scoring import DEFAULT_TS_VARIANT, TS_VARIANTS, ImageScore, ScoringItem, score_images
from generation.metrics.summaries import ALL, METRIC_NAMES, GroupSummary, MetricStats, overall, summarize

__all__ = [
    "ALL",
    "DEFAULT_CLIP_MODEL",
    "DEFAULT_DINO_MODEL",
    "DEFAULT_TS_VARIANT",
    "METRIC_NAMES",
    "TS_VARIANTS",
    "Embedder",
    "GroupSummary",
    "ImageScore",
    "MetricStats",
    "ReferenceEmbeddings",
    "ScoringItem",
    "get_embedder",
    "overall",
    "score_images",
    "summarize",
]
