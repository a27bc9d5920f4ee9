"""python -m generation metrics: sidecars in, JSON results out."""

from __future__ import annotations

import argparse
import json

import pytest

from generation.metrics import ALL, GroupSummary
from generation.metrics.cli import read_sidecar, register
from tests.generation.metrics_fixtures import write_images, write_sidecar


def _row(rows, **fields):
    [row] = [row for row in rows if all(getattr(row, key) == value for key, value in fields.items())]
    return row


def _parser():
    parser = argparse.ArgumentParser(prog="generation")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_metrics_command_reads_sidecars_and_writes_json(tiny_encoders_dir, tmp_path, capsys):
    images = write_images(tmp_path / "images" / "run", 3, seed=5)
    for image in images[:2]:
        write_sidecar(image, concept="dog", prompt_set="live")
    references = write_images(tmp_path / "refs" / "dog", 2, seed=6, suffix=".jpg")
    out = tmp_path / "results.json"
    args = _parser().parse_args(
        [
            "metrics",
            "--images",
            str(tmp_path / "images"),
            "--references",
            str(references[0].parent.parent),
            "--clip-model",
            str(tiny_encoders_dir / "clip"),
            "--dino-model",
            str(tiny_encoders_dir / "dino"),
            "--out",
            str(out),
        ]
    )
    assert args.handler(args) == 1  # the third image has no sidecar

    results = json.loads(out.read_text())
    assert results["settings"]["ts_variant"] == "without_class"
    assert results["methods"] == {
        "mixed(w_c=3.5, w_s=3.5)": {"family": "mixed", "params": {"w_c": 3.5, "w_s": 3.5}, "label": "w_c=3.5, w_s=3.5"}
    }
    errors = [image["error"] for image in results["images"]]
    assert errors[:2] == [None, None] and "02.json" in errors[2]
    row = _row([GroupSummary.from_dict(r) for r in results["summary"]], concept=ALL, category="live")
    assert row.n_images == 2
    printed = capsys.readouterr()
    assert "CLIP-TS variant: without_class" in printed.out and "expected a JSON sidecar" in printed.err


def test_sidecar_with_missing_keys_or_bad_params_is_named(tmp_path):
    [image] = write_images(tmp_path, 1)
    write_sidecar(image, params=[3.5])
    with pytest.raises(ValueError, match=r'00.json: expected "params" to be an object'):
        read_sidecar(image)
    image.with_suffix(".json").write_text(json.dumps({"prompt_template": "a {concept}"}))
    with pytest.raises(ValueError, match=r"missing \['concept_token', 'superclass', 'sampler', 'params'"):
        read_sidecar(image)
