"""CLIP-IS, DINO-IS and CLIP-TS: arithmetic, prompts, preprocessing, tiny models, aggregation, CLI."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest

from generation import metrics
from generation.errors import ModelLoadError, PromptError
from generation.metrics import ALL, Embedder, ImageScore, ScoringItem, score_images, summarize
from generation.tiny import save_tiny_clip, save_tiny_dino
from tests.generation.metrics_fixtures import write_images, write_sidecar

SQRT_HALF = math.sqrt(0.5)


# -- arithmetic on constructed embeddings -------------------------------------


def test_cosine_matrix_of_known_vectors():
    left = np.array([[1.0, 0.0], [0.0, 2.0]])
    right = np.array([[3.0, 0.0], [1.0, 1.0], [0.0, -1.0]])
    expected = np.array([[1.0, SQRT_HALF, 0.0], [0.0, SQRT_HALF, -1.0]])
    np.testing.assert_allclose(metrics.cosine_matrix(left, right), expected, atol=1e-12)


def test_image_similarity_is_mean_over_all_reference_generated_pairs():
    references = np.array([[1.0, 0.0], [0.0, 1.0]])
    generated = np.array([[5.0, 0.0], [1.0, 1.0]])
    # cosines: [[1, sqrt(1/2)], [0, sqrt(1/2)]]
    assert metrics.image_similarity(references, generated) == pytest.approx((1 + 2 * SQRT_HALF) / 4, abs=1e-12)
    per_image = metrics.per_image_similarity(references, generated)
    np.testing.assert_allclose(per_image, [0.5, SQRT_HALF], atol=1e-12)
    assert per_image.mean() == pytest.approx(metrics.image_similarity(references, generated), abs=1e-12)


def test_text_similarity_pairs_rows():
    texts = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    images = np.array([[2.0, 0.0], [1.0, 0.0], [-1.0, -1.0]])
    np.testing.assert_allclose(metrics.text_similarity(texts, images), [1.0, 0.0, -1.0], atol=1e-12)


def test_zero_embedding_is_rejected():
    with pytest.raises(ValueError, match="non-zero"):
        metrics.l2_normalize(np.zeros((1, 3)))


def test_harmonic_mean_of_is_and_ts():
    assert metrics.harmonic_mean(0.8, 0.2) == pytest.approx(0.32)
    assert metrics.harmonic_mean(0.0, 0.3) == 0.0


def test_population_std_over_values():
    stats = metrics.mean_and_std([0.2, 0.4])
    assert (stats.mean, stats.std) == (pytest.approx(0.3), pytest.approx(0.1))


# -- prompts --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "without_class", "with_class"),
    [
        ("a {concept} in the jungle", "a in the jungle", "a dog in the jungle"),
        ("a red {concept}", "a red", "a red dog"),
        ("{concept} sitting on a windowsill", "sitting on a windowsill", "dog sitting on a windowsill"),
    ],
)
def test_ts_prompt_variants(template, without_class, with_class):
    assert metrics.ts_prompts(template, "dog") == {"without_class": without_class, "with_class": with_class}


def test_concept_prompt_uses_token_and_superclass():
    assert metrics.concept_prompt("a {concept} in the snow", "sks", "stuffed animal") == \
        "a sks stuffed animal in the snow"


@pytest.mark.parametrize("template", ["a dog in the snow", "a {concept} and a {concept}", "a {0} in the snow"])
def test_template_needs_exactly_one_placeholder(template):
    with pytest.raises(PromptError, match="expected exactly one {concept}"):
        metrics.ts_prompts(template, "dog")


def test_live_object_split_by_superclass():
    assert [metrics.concept_category(word) for word in ("dog", "cat", "stuffed animal", "toy")] == \
        ["live", "live", "object", "object"]


# -- preprocessing ----------------------------------------------------------------


def test_resize_and_crop_geometry_follow_torchvision_rules():
    assert metrics.resized_shape(512, 512, 224) == (224, 224)
    assert metrics.resized_shape(300, 400, 256) == (256, 341)
    assert metrics.resized_shape(401, 300, 256) == (342, 256)
    assert metrics.crop_box(256, 341, 224) == (16, 58)


def test_clip_pixels_of_flat_image_are_normalised_constant():
    from PIL import Image

    preprocessing = metrics.Preprocessing(224, 224, (0.5, 0.25, 0.0), (0.5, 0.25, 1.0))
    image = Image.new("RGB", (512, 384), (255, 0, 51))
    pixels = metrics.clip_pixels(image, preprocessing, is_reference=False)
    assert pixels.shape == (3, 224, 224)
    np.testing.assert_allclose(pixels[:, 100, 100], [1.0, -1.0, 0.2], atol=1e-5)


def test_reference_is_squashed_to_square_before_crop():
    from PIL import Image

    preprocessing = metrics.Preprocessing(32, 32, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    image = Image.new("RGB", (200, 100), (0, 0, 0))
    image.paste((255, 255, 255), (0, 0, 50, 100))  # left quarter white
    squashed = metrics.clip_pixels(image, preprocessing, is_reference=True)
    cropped = metrics.clip_pixels(image, preprocessing, is_reference=False)
    # Squashed keeps the white quarter at the left edge; a centre crop of the wide image cuts it away.
    assert squashed[0, 16, 2] == pytest.approx(1.0, abs=0.05)
    assert cropped[0, 16, 2] == pytest.approx(0.0, abs=0.05)


def test_dino_pixels_shape_and_normalisation():
    from PIL import Image

    preprocessing = metrics.Preprocessing(256, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    pixels = metrics.dino_pixels(Image.new("RGB", (300, 500), (0, 0, 0)), preprocessing)
    assert pixels.shape == (3, 224, 224)
    np.testing.assert_allclose(pixels[:, 0, 0], [-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225], atol=1e-5)


# -- tiny models -------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-encoders")
    save_tiny_clip(folder)
    save_tiny_dino(folder)
    return folder


@pytest.fixture(scope="module")
def embedder(tiny_dir):
    return Embedder(tiny_dir / "clip", tiny_dir / "dino", batch_size=4)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    return {
        "references": write_images(folder / "references", 3, size=(80, 60), seed=1, suffix=".jpg"),
        "generated": write_images(folder / "generated", 5, size=(64, 64), seed=2),
    }


def test_embedding_shapes_are_unit_rows(embedder, photos):
    from PIL import Image

    images = [Image.open(path).convert("RGB") for path in photos["generated"]]
    clip = embedder.embed_clip_images(images)
    dino = embedder.embed_dino_images(images)
    texts, truncated = embedder.embed_texts(["a sks dog", "a in the jungle"])
    assert (clip.shape, dino.shape, texts.shape) == ((5, 16), (5, 32), (2, 16))
    np.testing.assert_allclose(np.linalg.norm(np.concatenate([clip, texts]), axis=1), 1.0, atol=1e-6)
    assert truncated == [False, False]


def test_batched_embeddings_equal_one_by_one(embedder, photos):
    from PIL import Image

    images = [Image.open(path).convert("RGB") for path in photos["generated"]]
    batched = embedder.embed_clip_images(images)
    single = np.concatenate([embedder.embed_clip_images([image]) for image in images])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_long_prompt_truncation_is_reported(embedder):
    _, truncated = embedder.embed_texts(["a " + "red " * 80 + "dog", "a dog"])
    assert truncated == [True, False]


def test_missing_model_folder_names_the_path(tmp_path):
    with pytest.raises(ModelLoadError, match=f"CLIP model {tmp_path / 'absent'}: expected a folder with config.json"):
        Embedder(tmp_path / "absent", tmp_path / "absent")


def test_clip_folder_given_as_dino_model_is_rejected(tiny_dir, photos):
    swapped = Embedder(tiny_dir / "clip", tiny_dir / "clip")
    with pytest.raises(ModelLoadError, match="expected a DINOv2 model, got model_type 'clip'"):
        swapped.embed_dino_images([])


def _items(paths, **fields):
    defaults = {"prompt_template": "a {concept} in the jungle", "concept_token": "sks", "superclass": "dog",
                "method": "mixed", "concept": "dog", "prompt_set": "live"}
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
    expected_is = metrics.per_image_similarity(clip_refs, clip_images)
    expected_dino = metrics.per_image_similarity(embedder.embed_dino_images(references), dino_images)
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
    [score] = score_images(_items(photos["generated"][:1]), photos["references"], embedder=embedder,
                           ts_variant="with_class")
    assert (score.ts_variant, score.clip_ts) == ("with_class", score.clip_ts_with_class)


def test_second_run_embeds_no_reference_again(tiny_dir, photos):
    fresh = Embedder(tiny_dir / "clip", tiny_dir / "dino")
    first = score_images(_items(photos["generated"][:2]), photos["references"], embedder=fresh)
    assert fresh.references_embedded == 3
    second = score_images(_items(photos["generated"][2:4]), list(photos["references"]), embedder=fresh)
    assert fresh.references_embedded == 3
    assert [s.error for s in first + second] == [None] * 4


def test_references_are_cached_by_content_not_path(tiny_dir, photos, tmp_path):
    fresh = Embedder(tiny_dir / "clip", tiny_dir / "dino")
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


# -- aggregation ---------------------------------------------------------------------


def _score(method, concept, superclass, prompt_set, template, clip_is, ts=0.3, error=None):
    values = {} if error else {"clip_is": clip_is, "dino_is": clip_is / 2, "clip_ts": ts,
                               "clip_ts_without_class": ts, "clip_ts_with_class": ts + 0.1}
    return ImageScore(item_id=f"{concept}-{template}-{clip_is}", method=method, concept=concept,
                      category=metrics.concept_category(superclass), prompt_set=prompt_set,
                      prompt_template=template, seed_index=0, error=error, **values)


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
    assert metrics.overall(rows, "m", "object").mean("clip_is") == pytest.approx(0.55)
    assert metrics.overall(rows, "other").mean("clip_is") == pytest.approx(0.0)
    assert metrics.GroupSummary.from_dict(json.loads(json.dumps(everything.to_dict()))) == everything


# -- command line ----------------------------------------------------------------------


def _parser():
    from generation.metrics_cli import register

    parser = argparse.ArgumentParser(prog="generation")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_metrics_command_reads_sidecars_and_writes_json(tiny_dir, tmp_path, capsys):
    images = write_images(tmp_path / "images" / "run", 3, seed=5)
    for image in images[:2]:
        write_sidecar(image, concept="dog", prompt_set="live")
    references = write_images(tmp_path / "refs" / "dog", 2, seed=6, suffix=".jpg")
    out = tmp_path / "results.json"
    args = _parser().parse_args([
        "metrics", "--images", str(tmp_path / "images"), "--references", str(references[0].parent.parent),
        "--clip-model", str(tiny_dir / "clip"), "--dino-model", str(tiny_dir / "dino"), "--out", str(out)])
    assert args.handler(args) == 1  # the third image has no sidecar

    results = json.loads(out.read_text())
    assert results["settings"]["ts_variant"] == "without_class"
    assert results["methods"] == {"mixed(w_c=3.5, w_s=3.5)": {
        "family": "mixed", "params": {"w_c": 3.5, "w_s": 3.5}, "label": "w_c=3.5, w_s=3.5"}}
    errors = [image["error"] for image in results["images"]]
    assert errors[:2] == [None, None] and "02.json" in errors[2]
    row = _row([metrics.GroupSummary.from_dict(r) for r in results["summary"]], concept=ALL, category="live")
    assert row.n_images == 2
    printed = capsys.readouterr()
    assert "CLIP-TS variant: without_class" in printed.out and "expected a JSON sidecar" in printed.err


def test_sidecar_with_missing_keys_or_bad_params_is_named(tmp_path):
    from generation.metrics_cli import read_sidecar

    [image] = write_images(tmp_path, 1)
    write_sidecar(image, params=[3.5])
    with pytest.raises(ValueError, match=r'00.json: expected "params" to be an object'):
        read_sidecar(image)
    image.with_suffix(".json").write_text(json.dumps({"prompt_template": "a {concept}"}))
    with pytest.raises(ValueError, match=r"missing \['concept_token', 'superclass', 'sampler', 'params'"):
        read_sidecar(image)
