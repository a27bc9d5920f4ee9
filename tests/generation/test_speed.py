"""Speed paths: off by default, refused where they cannot run, and several prompts per call change no image."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest

from generation.api import GenerationRequest, check_request, generate, generate_many, iter_samples
from generation.backbones import backbone_of
from generation.errors import ParameterError
from generation.speed import SpeedOptions, denoiser_call

TEMPLATES = ("a {concept} in the snow", "a red {concept}", "a {concept} on top of a purple rug in a forest")


def request(model, template=TEMPLATES[0], **overrides):
    fields = {
        "model": str(model),
        "concept_token": "sks",
        "superclass": "dog",
        "prompt_template": template,
        "sampler": "mixed",
        "params": {},
        "seed_indices": [0, 1],
        "steps": 3,
        "device": "cpu",
    }
    return GenerationRequest(**{**fields, **overrides})


def pixels(samples):
    return [np.asarray(sample.image, dtype=np.int16) for sample in samples]


def test_every_speed_path_is_off_by_default(tiny_model_dir):
    options = request(tiny_model_dir).speed
    assert options == SpeedOptions(compile=False, compile_cache_dir=None, cuda_graphs=False, memory_budget_gib=None)
    assert generate(request(tiny_model_dir, seed_indices=[0]))[0].dtype == "float32"


def test_the_default_run_calls_the_denoiser_eagerly(tiny_pipeline):
    backbone = backbone_of(tiny_pipeline)
    own = dict(backbone.denoiser.attn_processors)
    assert denoiser_call(backbone, SpeedOptions(), own) == backbone.denoise
    assert backbone.denoiser._compiled_call_impl is None


def test_a_sampler_with_its_own_processors_bypasses_the_compiled_denoiser(tiny_pipeline):
    from diffusers.models.attention_processor import AttnProcessor

    backbone = backbone_of(tiny_pipeline)
    own = dict(backbone.denoiser.attn_processors)
    assert denoiser_call(backbone, SpeedOptions(compile=True), own) == backbone.denoise
    swapped = {**own, next(iter(own)): AttnProcessor()}
    call = denoiser_call(backbone, SpeedOptions(compile=True), swapped)
    assert call.keywords == {"module": backbone.denoiser.forward}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (SpeedOptions(compile=True, cuda_graphs=True), "compile and cuda_graphs: expected at most one of them"),
        (SpeedOptions(memory_budget_gib=0), "memory_budget_gib: expected a number > 0, got 0"),
        (SpeedOptions(compile_cache_dir="/tmp/x"), "compile_cache_dir: expected compile=true with it"),
    ],
)
def test_impossible_combinations_are_refused_before_loading(tmp_path, options, message):
    with pytest.raises(ParameterError, match=message):
        check_request(request(tmp_path / "no-model", speed=options))


@pytest.mark.parametrize("option", ["cuda_graphs", "memory_budget_gib"])
def test_gpu_only_paths_are_refused_on_cpu(tiny_model_dir, option):
    options = dataclasses.replace(SpeedOptions(), **{option: True if option == "cuda_graphs" else 4.0})
    with pytest.raises(ParameterError, match=f"{option}: a GPU speed path, expected a CUDA device, got cpu"):
        generate(request(tiny_model_dir, speed=options))


@pytest.mark.parametrize("backbone", ["sd", "sdxl", "pixart_alpha"])
def test_several_prompts_in_one_call_give_the_images_of_one_at_a_time(backbone_dirs, backbone):
    model = backbone_dirs[backbone]
    alone = [generate(request(model, template, batch_size=1)) for template in TEMPLATES]
    batches = []
    packed = generate_many(
        [request(model, template, batch_size=6) for template in TEMPLATES],
        progress=lambda done, total, step, steps: batches.append(done),
    )
    assert set(batches[:-1]) == {0}  # all six images in the first (and only) call
    assert np.abs(pixels(alone[0])[0] - pixels(alone[1])[0]).max() > 2  # the prompts do make different images
    for one, many in zip(alone, packed, strict=True):
        assert [s.prompt for s in many] == [s.prompt for s in one]
        for a, b in zip(pixels(one), pixels(many), strict=True):
            assert np.abs(a - b).max() <= 2


def test_iter_samples_hands_over_each_call_before_the_next_one_starts(tiny_model_dir):
    events = []
    batch = [request(tiny_model_dir, seed_indices=[0, 1, 2], batch_size=2)]
    progress = lambda done, total, step, steps: events.append(("step", done, step))  # noqa: E731
    for number, sample in iter_samples(batch, progress=progress):
        events.append(("sample", number, sample.seed_index))
    assert events.index(("sample", 0, 1)) < events.index(("step", 2, 1))  # the first call's images, then call two
    assert events[-1] == ("sample", 0, 2)


def test_a_sampler_that_reads_token_positions_gets_one_prompt_per_call(tiny_model_dir):
    params = {"t_sw": 0, "q": 0.5}
    alone = [generate(request(tiny_model_dir, t, sampler="masked", params=params)) for t in TEMPLATES[:2]]
    batches = []
    packed = generate_many(
        [request(tiny_model_dir, t, sampler="masked", params=params, batch_size=4) for t in TEMPLATES[:2]],
        progress=lambda done, total, step, steps: batches.append(done),
    )
    assert sorted(set(batches)) == [0, 2, 4]  # two calls of one prompt each
    for one, many in zip(alone, packed, strict=True):
        for a, b in zip(pixels(one), pixels(many), strict=True):
            assert np.abs(a - b).max() <= 2


def test_requests_for_different_concepts_are_not_packed_together(tiny_model_dir):
    with pytest.raises(ParameterError, match="got different superclass"):
        generate_many([request(tiny_model_dir), request(tiny_model_dir, superclass="cat")])


def test_compile_wraps_the_denoiser_of_its_own_cached_pipeline_with_a_kernel_cache(
    tiny_model_dir, tiny_pipeline, tmp_path, monkeypatch
):
    from generation.pipelines import load_pipeline

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "unset")  # restored after the test
    compiled = load_pipeline(tiny_model_dir, device="cpu", compile=True, compile_cache_dir=tmp_path / "kernels")
    assert compiled is not tiny_pipeline  # a separate cache entry; the eager pipeline stays eager
    assert compiled.unet._compiled_call_impl is not None and tiny_pipeline.unet._compiled_call_impl is None
    assert (tmp_path / "kernels").is_dir()
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "kernels")
