"""``python -m generation world train``: every phase writes a loadable model, and a rerun resumes."""

import json
import subprocess
import sys

import pytest

from generation.world.manifest import changed_files
from generation.world.train import _phase

pytestmark = pytest.mark.slow


def _train(directory):
    return subprocess.run(
        [sys.executable, "-m", "generation", "world", "train", str(directory), "--quick", "--device", "cpu"],
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    ).stdout


def test_quick_training_writes_every_model_and_a_rerun_redoes_only_what_is_missing(tmp_path):
    from generation.metrics.embedders import Embedder
    from generation.world.judge import Judge

    first = _train(tmp_path)
    stages = ("vae step", "text-to-image step", "(objects weighed up) step", "clip step", "dino step", "judge step")
    for phase in stages:
        assert phase in first
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["seed"] == 0 and "world train" in manifest["command"]
    phases = {"pipeline", "pipeline/vae", "judge", "clip", "dino", "subjects/sunny_ball"}
    assert set(manifest["phase_seconds"]) >= phases
    assert "pipeline/unet/diffusion_pytorch_model.safetensors" in manifest["files"]
    assert changed_files(tmp_path) == []
    embedder = Embedder(str(tmp_path / "clip"), str(tmp_path / "dino"))
    assert embedder.embed_texts(["a ball on the beach"])[0].shape == (1, 64)
    assert set(Judge(tmp_path / "judge").read([_picture()])[0]) == {"shape", "colour", "pattern", "scene", "subject"}

    import shutil

    shutil.rmtree(tmp_path / "judge")
    second = _train(tmp_path)
    assert "judge step" in second
    assert "vae step" not in second and "text-to-image step" not in second and "clip step" not in second
    assert "rendering" not in second  # the cached pictures serve the judge
    assert changed_files(tmp_path) == []


def _picture():
    import numpy as np

    from generation.world.render import Thing, render

    return render(Thing("ball", "red", "plain", "beach"), np.random.default_rng(0))


def test_an_interrupted_phase_keeps_the_sub_phases_it_had_taken_in(tmp_path):
    parent, built = tmp_path / "pipeline", []
    _phase(parent / "vae", lambda out: (out / "weights").write_text("first"))

    def interrupted(out):
        assert (out / "vae" / "weights").exists()  # the parent works with its complete sub-phase inside
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _phase(parent, interrupted)
    _phase(parent / "vae", lambda out: built.append("vae"))
    _phase(parent, lambda out: built.append("pipeline"))
    assert built == ["pipeline"] and (parent / "vae" / "weights").read_text() == "first"
    assert json.loads((parent / ".complete").read_text())["seconds"] >= 0


def test_object_weights_weigh_up_the_square_around_the_object():
    import numpy as np

    from generation.world.train import object_weights

    weights = object_weights(np.array([[0.5, 0.5, 0.5], [0.25, 0.75, 0.25]], dtype=np.float32), 16, 4.0)
    assert weights.shape == (2, 1, 16, 16)
    assert weights[0, 0, 8, 8] == 5.0 and weights[0, 0, 0, 0] == 1.0
    assert weights[1, 0, 12, 4] == 5.0 and weights[1, 0, 4, 12] == 1.0  # rows are y, columns x
    assert 0.2 < float((weights[0] > 1).float().mean()) < 0.4  # a square of 0.55 x 2 x 0.5 a side
