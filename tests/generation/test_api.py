"""generate() and save_sample(): what the web platform calls."""

from __future__ import annotations

import json

import pytest

from generation.api import GenerationRequest, generate, save_sample
from generation.errors import ParameterError, PromptError
from generation.seeds import seed_for


def request_for(model, **overrides):
    fields = {
        "model": str(model),
        "concept_token": "sks",
        "superclass": "dog",
        "prompt_template": "a {concept} on the beach",
        "sampler": "mixed",
        "params": {"w_s": 2.0},
        "seed_indices": [0, 1, 2],
        "steps": 3,
        "device": "cpu",
    }
    fields.update(overrides)
    return GenerationRequest(**fields)


def test_generate_returns_one_described_sample_per_seed(tiny_model_dir):
    calls = []
    samples = generate(request_for(tiny_model_dir, batch_size=2), progress=lambda *args: calls.append(args))
    assert [s.seed_index for s in samples] == [0, 1, 2]
    sample = samples[1]
    assert sample.seed == seed_for("a {concept} on the beach", 1)
    assert sample.prompt == "a sks dog on the beach" and sample.superclass_prompt == "a dog on the beach"
    assert sample.params == {"w_c": 3.5, "w_s": 2.0}
    assert sample.unet_evaluations == 3 * 3 and sample.steps == 3
    assert sample.image.size == (64, 64) and sample.wall_time > 0 and sample.mask is None
    assert calls[-1] == (3, 3, 3, 3)
    assert (0, 3, 1, 3) in calls and (2, 3, 1, 3) in calls  # per step, per batch
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)


def test_images_do_not_depend_on_batch_size(tiny_model_dir):
    one_by_one = generate(
        request_for(tiny_model_dir, batch_size=1, sampler="switching", params={"t_sw": 1, "window_steps": 3})
    )
    together = generate(
        request_for(tiny_model_dir, batch_size=3, sampler="switching", params={"t_sw": 1, "window_steps": 3})
    )
    for a, b in zip(one_by_one, together, strict=True):
        diff = max(abs(x - y) for x, y in zip(a.image.tobytes(), b.image.tobytes(), strict=True))
        assert diff <= 1  # at most one grey level of float round-off


def test_save_masks_returns_the_masked_samplers_mask(tiny_model_dir, tmp_path):
    samples = generate(
        request_for(
            tiny_model_dir, sampler="masked", params={"t_sw": 1, "window_steps": 3}, seed_indices=[4], save_masks=True
        )
    )
    assert samples[0].mask is not None and samples[0].mask.mode == "L"
    path = save_sample(samples[0], tmp_path)
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert (tmp_path / sidecar["mask"]).is_file() and sidecar["mask"].endswith(".mask.webp")


def test_save_sample_writes_png_and_sidecar_atomically(tiny_model_dir, tmp_path):
    sample = generate(request_for(tiny_model_dir, seed_indices=[7]))[0]
    path = save_sample(sample, tmp_path / "out")
    assert path.name == "mixed-seed0007.png" and path.is_file()
    sidecar = json.loads(path.with_suffix(".json").read_text())
    for key in (
        "prompt_template",
        "concept_token",
        "superclass",
        "sampler",
        "params",
        "seed_index",
        "seed",
        "unet_evaluations",
        "wall_time",
        "steps",
        "model",
        "prompt",
    ):
        assert key in sidecar
    assert sidecar["prompt_template"] == "a {concept} on the beach" and sidecar["seed_index"] == 7
    assert sorted(p.name for p in path.parent.iterdir()) == ["mixed-seed0007.json", "mixed-seed0007.png"]


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        ({"params": {"w_s": -1}}, ParameterError, "mixed: w_s: expected a number >= 0, got -1"),
        ({"sampler": "fancy"}, ParameterError, "unknown sampler 'fancy'"),
        ({"prompt_template": "a dog"}, PromptError, "expected exactly one {concept}"),
        ({"steps": 0}, ParameterError, "steps: expected an integer in [1, 1000], got 0"),
        ({"seed_indices": []}, ParameterError, "seed_indices: expected at least one"),
        ({"seed_indices": [-3]}, ParameterError, "seed_indices: expected integers >= 0, got -3"),
    ],
)
def test_bad_requests_fail_before_any_model_is_loaded(tmp_path, overrides, error, message):
    with pytest.raises(error) as raised:
        generate(request_for(tmp_path / "no-model-here", **overrides))
    assert message in str(raised.value)
