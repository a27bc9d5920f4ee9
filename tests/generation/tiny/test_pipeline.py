"""The tiny Stable Diffusion pipeline: the diffusers layout, built once, safely in parallel."""

from __future__ import annotations

import threading

import pytest

from generation import tiny


def test_tiny_model_folder_has_the_diffusers_layout(tiny_model_dir):
    for part in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert (tiny_model_dir / part).is_dir()
    assert (tiny_model_dir / "model_index.json").is_file()


def test_ensure_is_idempotent(tiny_model_dir):
    before = (tiny_model_dir / "model_index.json").stat().st_mtime_ns
    assert tiny.ensure_tiny_model(tiny_model_dir) == tiny_model_dir
    assert (tiny_model_dir / "model_index.json").stat().st_mtime_ns == before


@pytest.mark.slow
def test_concurrent_builds_leave_one_complete_model(tmp_path):
    target = tmp_path / "tiny"
    results, errors = [], []

    def build():
        try:
            results.append(tiny.ensure_tiny_model(target))
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=build) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and results == [target, target]
    assert (target / "model_index.json").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["tiny"]  # no staging folders left


def test_build_into_a_folder_that_already_holds_other_models(tmp_path):
    (tmp_path / "clip").mkdir()
    (tmp_path / "clip" / "config.json").write_text("{}")
    assert tiny.ensure_tiny_model(tmp_path) == tmp_path
    assert (tmp_path / "model_index.json").is_file() and (tmp_path / "clip" / "config.json").is_file()
