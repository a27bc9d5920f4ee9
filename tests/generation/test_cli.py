"""python -m generation: sample, sweep, samplers, make-tiny."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from generation.cli import main, parse_grid
from generation.samplers import SAMPLER_NAMES, build_sampler


def test_samplers_lists_every_sampler_as_json(capsys):
    assert main(["samplers", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["name"] for row in rows][:3] == ["base", "superclass", "mixed"]


def test_samplers_text_shows_defaults_and_cost(capsys):
    main(["samplers"])
    out = capsys.readouterr().out
    assert "switching:" in out and "t_sw = 7" in out and "UNet evaluations per image: 3 + 2 R per step" in out


def test_sample_writes_images_and_sidecars(tiny_model_dir, tmp_path, capsys):
    code = main(
        [
            "sample",
            "--model",
            str(tiny_model_dir),
            "--concept-token",
            "sks",
            "--superclass",
            "dog",
            "--prompt",
            "a {concept} in the snow",
            "--sampler",
            "mixed",
            "--param",
            "w_s=3.5",
            "--param",
            "w_c=2",
            "--seeds",
            "0-1",
            "--steps",
            "3",
            "--device",
            "cpu",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    sidecars = sorted(tmp_path.glob("*.json"))
    assert [p.name for p in sidecars] == ["mixed-seed0000.json", "mixed-seed0001.json"]
    data = json.loads(sidecars[1].read_text())
    assert data["params"] == {"w_c": 2.0, "w_s": 3.5} and data["unet_evaluations"] == 9
    assert "2/2 images" in capsys.readouterr().err


def test_bad_parameter_exits_with_a_message(tiny_model_dir, tmp_path, capsys):
    code = main(
        [
            "sample",
            "--model",
            str(tiny_model_dir),
            "--concept-token",
            "sks",
            "--superclass",
            "dog",
            "--prompt",
            "a {concept}",
            "--sampler",
            "mixed",
            "--param",
            "w_s=-1",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 2
    assert "error: mixed: w_s: expected a number >= 0, got -1" in capsys.readouterr().err


def test_sweep_writes_one_folder_per_grid_point(tiny_model_dir, tmp_path):
    code = main(
        [
            "sweep",
            "--model",
            str(tiny_model_dir),
            "--concept-token",
            "sks",
            "--superclass",
            "dog",
            "--prompt",
            "a {concept}",
            "--sampler",
            "switching",
            "--grid",
            "t_sw=0,2",
            "--seeds",
            "0",
            "--steps",
            "2",
            "--device",
            "cpu",
            "--quiet",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "switching").iterdir()) == ["t_sw0", "t_sw2"]


def test_parse_grid_is_a_cartesian_product():
    assert parse_grid(["w_s=0,1", "t_sw=5"]) == [{"w_s": 0, "t_sw": 5}, {"w_s": 1, "t_sw": 5}]


def test_module_entry_point_runs():
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-m", "generation", "samplers"], capture_output=True, text=True, check=True, cwd=root
    )
    assert "photoswap:" in out.stdout


def test_make_tiny_writes_pipeline_clip_and_dino(tmp_path, capsys):
    assert main(["make-tiny", str(tmp_path / "tiny")]) == 0
    assert (tmp_path / "tiny" / "model_index.json").is_file()
    assert (tmp_path / "tiny" / "clip").is_dir() and (tmp_path / "tiny" / "dino").is_dir()


def sample_args(model, sampler, out, *extra):
    return [
        "sample",
        "--model",
        str(model),
        "--concept-token",
        "sks",
        "--superclass",
        "dog",
        "--prompt",
        "a {concept} in the snow",
        "--sampler",
        sampler,
        "--seeds",
        "0",
        "--steps",
        "2",
        "--device",
        "cpu",
        "--quiet",
        "--out",
        str(out),
        *extra,
    ]


@pytest.mark.parametrize("backbone", ["sd", "sdxl", "pixart_alpha"])
@pytest.mark.parametrize("sampler", SAMPLER_NAMES)
def test_every_sampler_samples_on_every_tiny_backbone(backbone_dirs, tmp_path, sampler, backbone):
    assert main(sample_args(backbone_dirs[backbone], sampler, tmp_path, "--backbone", backbone)) == 0
    data = json.loads((tmp_path / f"{sampler}-seed0000.json").read_text())
    assert data["backbone"] == backbone and data["sampler"] == sampler
    assert data["unet_evaluations"] == build_sampler(sampler, {}).evaluations_per_image(2)
    assert (tmp_path / data["image"]).is_file()


def test_sample_on_sdxl_through_the_module_entry_point(tiny_sdxl_dir, tmp_path):
    root = Path(__file__).resolve().parents[2]
    command = [sys.executable, "-m", "generation", *sample_args(tiny_sdxl_dir, "switching", tmp_path)]
    out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=root)
    assert "wrote 1 images" in out.stdout and (tmp_path / "switching-seed0000.png").is_file()


def test_a_backbone_other_than_the_models_is_an_error(tiny_pixart_dir, tmp_path, capsys):
    assert main(sample_args(tiny_pixart_dir, "base", tmp_path, "--backbone", "sdxl")) == 2
    err = capsys.readouterr().err
    assert "--backbone sdxl: expected a SD-XL pipeline, but" in err and "is a PixArt-alpha pipeline" in err


def test_cuda_graphs_on_cpu_are_refused_with_a_message(tiny_model_dir, tmp_path, capsys):
    assert main(sample_args(tiny_model_dir, "base", tmp_path, "--cuda-graphs")) == 2
    assert "cuda_graphs: a GPU speed path, expected a CUDA device, got cpu" in capsys.readouterr().err


def test_make_tiny_builds_the_asked_backbone(tmp_path, capsys):
    assert main(["make-tiny", str(tmp_path / "xl"), "--backbone", "sdxl"]) == 0
    index = json.loads((tmp_path / "xl" / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionXLPipeline" and "tiny SD-XL pipeline" in capsys.readouterr().out
