"""Scoring generated images: values by hand, the reference cache, errors per item."""

from __future__ import annotations

import numpy as np
import pytest

from generation.metrics import Embedder, ScoringItem, score_images
from generation.metrics.arithmetic import per_image_similarity


def _items(paths, **fields):
    defaults = {
        "prompt_template": "a {concept} in the jungle",
        "concept_token": "sks",
        "superclass": "dog",
        "method": "mixed",
        "concept": "dog",
        "prompt_set": "live",
    }
    return [ScoringItem(image=path, seed_index=index, **{**defaults, **fields}) for index, path in enumerate(paths)]


def test_scores_match_embeddings_computed_by_hand(embedder, photos):
    from PIL import Image

    scores = score_images(_items(photos["generated"][:2]), photos["references"], embedder=embedder)
    references = [Image.open(path).convert("RGB") for path in photos["references"]]
    generated = [Image.open(path).convert("RGB") for path in photos["generated"][:2]]
    clip_refs = embedder.embed_clip_images(references, is_reference=True)
    clip_images = embedder.embed_clip_images(generated)
    dino_images = embedder.embed_dino_images(generated)
    texts, _ = embedder.embed_texts(["a in the jungle", "a dog in the jungle"])
    expected_is = per_image_similarity(clip_refs, clip_images)
    expected_dino = per_image_similarity(embedder.embed_dino_images(references), dino_images)
    for index, score in enumerate(scores):
        assert score.error is None
        assert score.prompt == "a sks dog in the jungle"
        assert score.ts_texts == {"without_class": "a in the jungle", "with_class": "a dog in the jungle"}
        assert score.clip_is == pytest.approx(expected_is[index], abs=1e-6)
        assert score.dino_is == pytest.approx(expected_dino[index], abs=1e-6)
        assert score.clip_ts_without_class == pytest.approx(float(texts[0] @ clip_images[index]), abs=1e-6)
        assert score.clip_ts_with_class == pytest.approx(float(texts[1] @ clip_images[index]), abs=1e-6)
        assert score.clip_ts == score.ts("without_class")
        assert score.ts_variant == "without_class"


def test_default_ts_variant_can_be_switched(embedder, photos):
    [score] = score_images(
        _items(photos["generated"][:1]), photos["references"], embedder=embedder, ts_variant="with_class"
    )
    assert (score.ts_variant, score.clip_ts) == ("with_class", score.clip_ts_with_class)


def test_second_run_embeds_no_reference_again(tiny_encoders_dir, photos):
    fresh = Embedder(tiny_encoders_dir / "clip", tiny_encoders_dir / "dino")
    first = score_images(_items(photos["generated"][:2]), photos["references"], embedder=fresh)
    assert fresh.references_embedded == 3
    second = score_images(_items(photos["generated"][2:4]), list(photos["references"]), embedder=fresh)
    assert fresh.references_embedded == 3
    assert [s.error for s in first + second] == [None] * 4


def test_references_are_cached_by_content_not_path(tiny_encoders_dir, photos, tmp_path):
    fresh = Embedder(tiny_encoders_dir / "clip", tiny_encoders_dir / "dino")
    copy = tmp_path / "copy.jpg"
    copy.write_bytes(photos["references"][0].read_bytes())
    fresh.reference_embeddings([photos["references"][0]])
    embeddings = fresh.reference_embeddings([copy, photos["references"][0]])
    assert fresh.references_embedded == 1
    np.testing.assert_array_equal(embeddings.clip[0], embeddings.clip[1])


def test_bad_items_get_errors_and_the_rest_are_scored(embedder, photos, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    items = _items([photos["generated"][0], tmp_path / "missing.png", broken, photos["generated"][1]])
    items[3] = ScoringItem(photos["generated"][1], "a dog in the jungle", "sks", "dog", item_id="no-placeholder")
    scores = score_images(items, photos["references"], embedder=embedder)
    assert scores[0].error is None and scores[0].clip_is is not None
    assert "missing.png" in scores[1].error and "expected an image file" in scores[1].error
    assert "broken.png" in scores[2].error and "expected a readable image" in scores[2].error
    assert scores[3].error.startswith("item no-placeholder:") and "{concept}" in scores[3].error
    assert [s.clip_is for s in scores[1:]] == [None] * 3


def test_pil_images_can_be_scored(embedder, photos):
    from PIL import Image

    item = ScoringItem(Image.open(photos["generated"][0]), "a red {concept}", "sks", "dog", item_id="in-memory")
    [score] = score_images([item], photos["references"], embedder=embedder)
    assert (score.item_id, score.error, score.ts_texts["without_class"]) == ("in-memory", None, "a red")


def test_empty_reference_set_is_an_error(embedder, photos):
    with pytest.raises(ValueError, match="reference set: expected at least one reference photo"):
        score_images(_items(photos["generated"][:1]), [], embedder=embedder)


def test_per_concept_references_and_unknown_concept(embedder, photos):
    items = _items(photos["generated"][:1]) + _items(photos["generated"][1:2], concept="cat", superclass="cat")
    scores = score_images(items, {"dog": photos["references"]}, embedder=embedder)
    assert scores[0].error is None
    assert "expected photos for concept 'cat'" in scores[1].error
