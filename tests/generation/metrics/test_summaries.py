"""Aggregation: per concept over prompt means, then over concepts, live and object."""

from __future__ import annotations

import json

import pytest

from generation.metrics import ALL, GroupSummary, ImageScore, summarize
from generation.metrics.summaries import mean_and_std, overall
from generation.metrics.texts import concept_category


def test_population_std_over_values():
    stats = mean_and_std([0.2, 0.4])
    assert (stats.mean, stats.std) == (pytest.approx(0.3), pytest.approx(0.1))


def _score(method, concept, superclass, prompt_set, template, clip_is, ts=0.3, error=None):
    values = (
        {}
        if error
        else {
            "clip_is": clip_is,
            "dino_is": clip_is / 2,
            "clip_ts": ts,
            "clip_ts_without_class": ts,
            "clip_ts_with_class": ts + 0.1,
        }
    )
    return ImageScore(
        item_id=f"{concept}-{template}-{clip_is}",
        method=method,
        concept=concept,
        category=concept_category(superclass),
        prompt_set=prompt_set,
        prompt_template=template,
        seed_index=0,
        error=error,
        **values,
    )


def _row(rows, **fields):
    [row] = [row for row in rows if all(getattr(row, key) == value for key, value in fields.items())]
    return row


def test_concept_row_is_mean_and_std_over_prompt_means():
    scores = [
        _score("m", "dog", "dog", "live", "a {concept} x", 0.2),
        _score("m", "dog", "dog", "live", "a {concept} x", 0.4),  # prompt mean 0.3
        _score("m", "dog", "dog", "live", "a {concept} y", 0.7),
        _score("m", "dog", "dog", "live", "a {concept} y", 0.7),
        _score("m", "dog", "dog", "live", "a {concept} y", 0.7),  # prompt mean 0.7
        _score("m", "dog", "dog", "live", "a {concept} y", 0.0, error="item z: broken"),
    ]
    row = _row(summarize(scores), concept="dog", prompt_set="live")
    assert (row.n_images, row.n_prompts, row.n_errors) == (5, 2, 1)
    assert row.metrics["clip_is"].mean == pytest.approx(0.5)
    assert row.metrics["clip_is"].std == pytest.approx(0.2)
    assert row.metrics["clip_ts_with_class"].mean == pytest.approx(0.4)


def test_live_object_and_overall_rows_average_concepts():
    scores = [
        _score("m", "dog", "dog", "live", "a {concept} x", 0.6),
        _score("m", "cat", "cat", "live", "a {concept} x", 0.8),
        _score("m", "can", "can", "object", "a {concept} x", 0.1),
        _score("m", "can", "can", "object", "a {concept} x", 0.3),
        _score("m", "can", "can", "base", "a photo of a {concept}", 0.9),
        _score("other", "dog", "dog", "live", "a {concept} x", 0.0),
    ]
    rows = summarize(scores)
    live = _row(rows, method="m", concept=ALL, category="live", prompt_set="live")
    assert (live.n_concepts, live.n_images, live.mean("clip_is")) == (2, 2, pytest.approx(0.7))
    assert live.metrics["clip_is"].std == pytest.approx(0.1)
    everything = _row(rows, method="m", concept=ALL, category=ALL, prompt_set=ALL)
    # concept means over all their prompts: dog 0.6, cat 0.8, can (0.2 + 0.9) / 2 = 0.55
    assert everything.mean("clip_is") == pytest.approx((0.6 + 0.8 + 0.55) / 3)
    assert everything.n_images == 5
    assert overall(rows, "m", "object").mean("clip_is") == pytest.approx(0.55)
    assert overall(rows, "other").mean("clip_is") == pytest.approx(0.0)
    assert GroupSummary.from_dict(json.loads(json.dumps(everything.to_dict()))) == everything
