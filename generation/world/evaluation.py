"""Measurements of the world's models: prompt following, subject fidelity, the Mixed trade-off.

Each function samples through ``generation.api`` (the platform's own path) and reads the pictures with
the judge, CLIP and DINO. ``bench/world.py`` runs them at full size; the tests at a small one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from generation.world.captions import superclass_prompt
from generation.world.oracle import image_scores
from generation.world.vocabulary import CONCEPT_TOKEN, SCENES, SHAPES, SUBJECTS_BY_SLUG

SCENE_TEMPLATES = tuple(f"a {{concept}} {phrase}" for phrase in SCENES.values())


def sample(
    model: str | Path,
    sampler: str,
    template: str,
    superclass: str,
    seeds: Sequence[int],
    steps: int,
    params: dict | None = None,
    personalization: str | Path | None = None,
) -> list:
    from generation.api import GenerationRequest, generate

    request = GenerationRequest(
        model=str(model),
        concept_token=CONCEPT_TOKEN,
        superclass=superclass,
        prompt_template=template,
        sampler=sampler,
        params=dict(params or {}),
        seed_indices=list(seeds),
        personalization=str(personalization) if personalization else None,
        steps=steps,
        device="cpu",
        batch_size=len(seeds),
    )
    return [result.image for result in generate(request)]


def prompt_following(judge, model, seeds: Sequence[int], steps: int, shapes=SHAPES, templates=SCENE_TEMPLATES) -> dict:
    """Superclass sampling of "a <shape> <scene>": how often the judge finds the prompted scene and shape,
    overall and (``shape_by_shape``, ``shape_by_scene``) the shape for each prompted shape and scene."""
    hits = {"scene": [], "shape": []}
    shape_hits = {"shape_by_shape": {}, "shape_by_scene": {}}
    for template in templates:
        scene = next(name for name, phrase in SCENES.items() if template.endswith(phrase))
        for shape in shapes:
            images = sample(model, "superclass", template, shape, seeds, steps)
            for reading in judge.read(images):
                hits["scene"].append(reading["scene"] == scene)
                hits["shape"].append(reading["shape"] == shape)
                shape_hits["shape_by_shape"].setdefault(shape, []).append(reading["shape"] == shape)
                shape_hits["shape_by_scene"].setdefault(scene, []).append(reading["shape"] == shape)
    return {
        "scene": float(np.mean(hits["scene"])),
        "shape": float(np.mean(hits["shape"])),
        "images": len(hits["scene"]),
        **{key: {name: float(np.mean(found)) for name, found in by.items()} for key, by in shape_hits.items()},
    }


def subject_fidelity(
    judge, model, subjects_dir, slugs: Sequence[str], seeds: Sequence[int], steps: int, templates=SCENE_TEMPLATES
) -> dict:
    """Base sampling of "a sks <shape> <scene>" with each subject's weights: how often the judge sees it."""
    accuracy = {}
    for slug in slugs:
        subject = SUBJECTS_BY_SLUG[slug]
        hits = []
        for template in templates:
            images = sample(
                model, "base", template, subject.superclass, seeds, steps, personalization=Path(subjects_dir) / slug
            )
            hits += [reading["subject"] == slug for reading in judge.read(images)]
        accuracy[slug] = float(np.mean(hits))
    return accuracy


@dataclass(frozen=True)
class SweepRow:
    subject: str
    w_s: float
    template: str
    seed: int
    clip_ts: float
    dino_is: float
    clip_is: float
    judge_text: float
    judge_subject: float


def mixed_sweep(
    judge,
    embedder,
    model,
    subjects_dir,
    references: dict[str, list],
    slugs: Sequence[str],
    templates: Sequence[str],
    seeds: Sequence[int],
    w_s_values: Sequence[float],
    steps: int,
    total: float = 7.0,
) -> list[SweepRow]:
    """Mixed with w_c = total - w_s over a grid: CLIP-TS, DINO-IS, CLIP-IS and the judge's scores per image."""
    from generation.metrics import ScoringItem, score_images

    rows = []
    for slug in slugs:
        subject = SUBJECTS_BY_SLUG[slug]
        for w_s in w_s_values:
            for template in templates:
                params = {"w_c": total - w_s, "w_s": w_s}
                images = sample(
                    model, "mixed", template, subject.superclass, seeds, steps, params, Path(subjects_dir) / slug
                )
                items = [
                    ScoringItem(image, template, CONCEPT_TOKEN, subject.superclass, concept=slug, item_id=str(seed))
                    for image, seed in zip(images, seeds, strict=True)
                ]
                scores = score_images(items, {slug: references[slug]}, embedder=embedder)
                probabilities = judge.probabilities(images)
                subject_reading = slug
                prompt = superclass_prompt(template, subject.superclass)
                for index, (score, seed) in enumerate(zip(scores, seeds, strict=True)):
                    one = {head: values[index] for head, values in probabilities.items()}
                    judged = image_scores(one, prompt, subject_reading)
                    rows.append(
                        SweepRow(
                            slug,
                            w_s,
                            template,
                            seed,
                            score.clip_ts,
                            score.dino_is,
                            score.clip_is,
                            judged["text"],
                            judged["subject"],
                        )
                    )
    return rows


def trade_off(rows: Sequence[SweepRow]) -> dict:
    """Spearman correlation of w_s with each metric: over the means at each w_s (the whole grid averaged),
    over the grid's cells (subject x w_s means) and over images."""
    from scipy.stats import spearmanr

    result = {}
    cells: dict[tuple[str, float], list[SweepRow]] = {}
    for row in rows:
        cells.setdefault((row.subject, row.w_s), []).append(row)
    for metric in ("clip_ts", "dino_is", "clip_is", "judge_text", "judge_subject"):
        keys = sorted(cells)
        cell_means = [np.mean([getattr(row, metric) for row in cells[key]]) for key in keys]
        by_w_s: dict[float, list[float]] = {}
        for row in rows:
            by_w_s.setdefault(row.w_s, []).append(getattr(row, metric))
        means = {w_s: float(np.mean(values)) for w_s, values in sorted(by_w_s.items())}
        result[metric] = {
            "spearman_means": float(spearmanr(list(means), list(means.values())).statistic),
            "spearman_cells": float(spearmanr([key[1] for key in keys], cell_means).statistic),
            "spearman_images": float(
                spearmanr([row.w_s for row in rows], [getattr(row, metric) for row in rows]).statistic
            ),
            "mean_by_w_s": {str(w_s): mean for w_s, mean in means.items()},
        }
    return result
