"""Fine-tuning on the tiny pipeline: each method's result loads through generation.pipelines and samples,
a resumed run equals an uninterrupted one, stop writes a checkpoint, bad input fails cleanly."""

from __future__ import annotations

import json
import resource
import signal

import pytest
import torch
from PIL import Image, ImageDraw
from safetensors.torch import load_file

from generation import pipelines
from generation.training import FineTuneError, FineTuneSettings, FineTuneStopped, Progress, fine_tune
from generation.training.photos import file_sha256

RESOLUTION = 32  # the tiny model's 64 px would only cost time
TOKENS = {"dreambooth": "sks", "lora": "sks", "textual_inversion": "<sks>"}
WEIGHT_FILES = {"lora": "pytorch_lora_weights.safetensors", "textual_inversion": "learned_embeds.safetensors"}


@pytest.fixture(scope="session")
def photos(tmp_path_factory):
    """Four "photos" of one subject: a red disc on a green ground, moved and scaled a little."""
    folder = tmp_path_factory.mktemp("subject")
    paths = []
    for index in range(4):
        image = Image.new("RGB", (48 + 4 * index, 40), (40, 160 + 10 * index, 60))
        ImageDraw.Draw(image).ellipse((6 + 2 * index, 6, 30 + index, 30), fill=(220, 30, 30))
        path = folder / f"photo-{index}.png"
        image.save(path)
        paths.append(path)
    return paths


def settings(method="lora", **overrides):
    return FineTuneSettings(**{"method": method, "steps": 3, "resolution": RESOLUTION, **overrides})


def train(tiny_model_dir, photos, output, method="lora", token=None, **kwargs):
    token = token or TOKENS[method]
    options = {key: kwargs.pop(key) for key in ("work_dir", "on_progress", "should_stop") if key in kwargs}
    return fine_tune(
        tiny_model_dir,
        photos,
        f"a photo of {token} dog",
        "a photo of dog",
        settings(method, **kwargs),
        output,
        device="cpu",
        **options,
    )


@pytest.fixture(autouse=True)
def empty_cache():
    pipelines.clear_cache()
    yield
    pipelines.clear_cache()


def nothing_left(parent, output) -> bool:
    """No result and no staging folder: the output's parent holds nothing but what the test put there."""
    return not output.exists() and not [p for p in parent.iterdir() if p.name.startswith(f".{output.name}")]


@pytest.mark.parametrize("method", ["dreambooth", "lora", "textual_inversion"])
def test_each_method_loads_through_the_pipeline_loader_and_samples(
    method, tiny_model_dir, photos, tmp_path, run_sampler
):
    seen: list[Progress] = []
    output = tmp_path / "out"
    result = train(tiny_model_dir, photos, output, method, on_progress=seen.append)

    assert result.format == {"dreambooth": "full"}.get(method, method)
    assert result.steps_done == 3 and result.resumed_from is None
    assert [p.step for p in seen] == [1, 2, 3] and all(p.total == 3 and p.loss > 0 for p in seen)
    assert seen[-1].eta_seconds == 0 and seen[-1].steps_per_second > 0
    manifest = json.loads((output / "manifest.json").read_text())
    assert manifest == result.manifest
    assert manifest["settings"]["method"] == method and manifest["seed"] == 0 and manifest["steps"] == 3
    assert manifest["files"] and all(file_sha256(output / name) == digest for name, digest in manifest["files"].items())
    assert [p["sha256"] for p in manifest["photos"]] == [file_sha256(p) for p in photos]
    assert pipelines.detect_format(output) == result.format

    base = pipelines.load_pipeline(tiny_model_dir, device="cpu")
    tuned = pipelines.load_pipeline(tiny_model_dir, personalization=output, device="cpu")
    token = TOKENS[method]
    before = run_sampler("base", {"w": 5.0}, token=token, pipeline=base) if method != "textual_inversion" else None
    after = run_sampler("base", {"w": 5.0}, token=token, pipeline=tuned)
    assert len(after.images) == 2 and torch.isfinite(after.latents).all()
    if before is not None:  # the trained weights change what the model makes
        assert (after.latents - before.latents).abs().max() > 1e-4
    else:
        assert token in tuned.tokenizer.get_vocab()


def test_lora_on_all_layers_adapts_the_convolutions_and_loads_them(tiny_model_dir, photos, tmp_path):
    attention, every = tmp_path / "attention", tmp_path / "all"
    train(tiny_model_dir, photos, attention, "lora")
    train(tiny_model_dir, photos, every, "lora", lora_targets="all")

    def adapted(output):
        return {key.split(".lora")[0].removeprefix("unet.") for key in load_file(str(output / WEIGHT_FILES["lora"]))}

    assert not any(name.endswith(("conv1", "conv2", "ff.net.2")) for name in adapted(attention))
    assert {name.rsplit(".", 1)[-1] for name in adapted(every)} >= {"conv1", "conv2", "to_q", "proj_in", "2"}
    base = pipelines.load_pipeline(tiny_model_dir, device="cpu").unet.state_dict()
    fused = pipelines.load_pipeline(tiny_model_dir, personalization=every, device="cpu").unet.state_dict()
    moved = {name.removesuffix(".weight") for name in base if not torch.equal(base[name], fused[name])}
    assert moved == set(adapted(every))  # every adapter loaded, attention and convolutions alike


def trained_weights(output, method) -> dict:
    if method in WEIGHT_FILES:
        return load_file(str(output / WEIGHT_FILES[method]))
    return load_file(str(output / "unet" / "diffusion_pytorch_model.safetensors"))


class Crash(Exception):
    """Stands for a worker dying between two checkpoints."""


@pytest.mark.parametrize("method", ["dreambooth", "lora", "textual_inversion"])
def test_a_run_resumed_after_a_crash_equals_an_uninterrupted_one(method, tiny_model_dir, photos, tmp_path):
    # LoRA runs with prior preservation, so its class images and their reuse on resume are tested too
    options = {"steps": 4, "checkpoint_every": 2}
    if method == "lora":
        options.update(prior_preservation=True, class_images=2)
    straight = train(tiny_model_dir, photos, tmp_path / "straight", method, **options)

    def crash_at_three(progress):
        if progress.step == 3:
            raise Crash

    work = tmp_path / "work"
    with pytest.raises(Crash):
        train(
            tiny_model_dir, photos, tmp_path / "resumed", method, work_dir=work, on_progress=crash_at_three, **options
        )
    assert sorted(p.name for p in work.iterdir() if p.name.startswith("checkpoint")) == ["checkpoint-2"]
    assert nothing_left(tmp_path, tmp_path / "resumed")
    class_images = sorted((work / "class_images").glob("*.png"))
    written = [p.stat().st_mtime_ns for p in class_images]

    steps_seen = []
    resumed = train(
        tiny_model_dir,
        photos,
        tmp_path / "resumed",
        method,
        work_dir=work,
        on_progress=lambda p: steps_seen.append(p.step),
        **options,
    )
    assert resumed.resumed_from == 2 and steps_seen == [3, 4]
    assert resumed.manifest["resumed_from"] == 2
    expected, found = trained_weights(straight.output_dir, method), trained_weights(resumed.output_dir, method)
    assert expected.keys() == found.keys()
    assert max((expected[k] - found[k]).abs().max().item() for k in expected) <= 1e-6
    if method == "lora":
        assert [p.name for p in class_images] == ["0000.png", "0001.png"]
        assert Image.open(class_images[0]).size == (RESOLUTION, RESOLUTION)
        assert [p.stat().st_mtime_ns for p in class_images] == written  # generated once, reused


def test_stop_writes_a_checkpoint_first_and_only_the_same_run_resumes_it(tiny_model_dir, photos, tmp_path):
    work, output = tmp_path / "work", tmp_path / "out"
    steps_done = []
    with pytest.raises(FineTuneStopped) as stopped:
        train(
            tiny_model_dir,
            photos,
            output,
            steps=4,
            checkpoint_every=100,
            work_dir=work,
            on_progress=lambda p: steps_done.append(p.step),
            should_stop=lambda: len(steps_done) >= 2,
        )
    assert stopped.value.step == 2 and stopped.value.checkpoint == work / "checkpoint-2"
    assert (work / "checkpoint-2" / "checkpoint.json").is_file()
    assert nothing_left(tmp_path, output)

    with pytest.raises(FineTuneError, match=r"another run \(different settings\)"):
        train(tiny_model_dir, photos, output, steps=4, learning_rate=2e-4, work_dir=work)
    result = train(tiny_model_dir, photos, output, steps=4, checkpoint_every=100, work_dir=work)
    assert result.resumed_from == 2 and result.steps_done == 4


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"photos": 2}, "expected 3 to 1000 photos"),
        ({"broken_photo": True}, "could not decode"),
        ({"steps": 0}, r"steps: expected a value in \[1, 100000\], got 0"),
        ({"learning_rate": 10.0}, r"learning_rate: expected a value in \[1e-08, 0.01\], got 10.0"),
        ({"method": "svdiff"}, "method: expected one of dreambooth, lora, textual_inversion, got 'svdiff'"),
        ({"base": "missing"}, "expected an existing diffusers folder"),
        ({"base": "sdxl"}, "fine-tuning takes Stable Diffusion 1.x/2.x pipelines, this is SD-XL"),
        ({"method": "textual_inversion", "token": "dog"}, "textual_inversion learns one new word"),
    ],
)
def test_bad_input_fails_with_a_message_and_leaves_nothing(change, message, tiny_model_dir, photos, tmp_path):
    base, chosen = tiny_model_dir, list(photos)
    if change.get("base") == "missing":
        base = tmp_path / "no-such-model"
    elif change.get("base") == "sdxl":
        base = tmp_path / "sdxl"
        base.mkdir()
        (base / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionXLPipeline"}))
    if "photos" in change:
        chosen = chosen[: change["photos"]]
    if change.get("broken_photo"):
        chosen[1] = tmp_path / "notes.png"
        chosen[1].write_text("not an image")
    method = change.get("method", "lora")
    token = change.get("token", "sks")
    overrides = {k: v for k, v in change.items() if k in ("steps", "learning_rate")}
    output = tmp_path / "out"
    with pytest.raises(FineTuneError, match=message):
        fine_tune(
            base,
            chosen,
            f"a photo of {token} dog",
            "a photo of dog",
            FineTuneSettings(method=method, resolution=RESOLUTION, **overrides),
            output,
            device="cpu",
        )
    assert nothing_left(tmp_path, output)


def test_a_full_disk_fails_the_run_and_leaves_nothing(tiny_model_dir, photos, tmp_path):
    """Writes beyond RLIMIT_FSIZE fail with EFBIG, as they fail with ENOSPC on a full disk."""
    output = tmp_path / "out"
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, hard))  # below the tiny UNet's ~1 MB
        with pytest.raises(FineTuneError, match="could not write the result"):
            train(tiny_model_dir, photos, output, "dreambooth", steps=1)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert nothing_left(tmp_path, output)


def test_an_output_folder_with_files_is_refused_before_training(tiny_model_dir, photos, tmp_path):
    output = tmp_path / "out"
    output.mkdir()
    (output / "other.txt").write_text("keep me")
    with pytest.raises(FineTuneError, match="expected a new or empty folder"):
        train(tiny_model_dir, photos, output)
    assert [p.name for p in output.iterdir()] == ["other.txt"]


def test_settings_defaults_and_validation():
    lora = FineTuneSettings.from_dict({"method": "lora", "steps": 200, "learning_rate": 2e-4})
    assert lora.steps == 200 and lora.effective_learning_rate == 2e-4 and lora.lora_rank == 4
    assert FineTuneSettings(method="dreambooth").effective_learning_rate == 5e-6
    assert FineTuneSettings(method="textual_inversion").effective_learning_rate == 5e-4
    assert FineTuneSettings.from_dict({"method": "lora", "prior_loss_weight": 1}).prior_loss_weight == 1.0
    cases = [
        ({"method": "lora", "epochs": 3}, "unknown field.*epochs"),
        ({"steps": 10}, "method: required"),
        ({"method": "lora", "steps": "10"}, "steps: expected an integer, got '10'"),
        ({"method": "lora", "steps": True}, "steps: expected an integer"),
        ({"method": "lora", "resolution": 500}, "resolution: expected a multiple of 8"),
        ({"method": "lora", "learning_rate": float("nan")}, "learning_rate: expected a finite number"),
        ({"method": "lora", "train_text_encoder": True}, "train_text_encoder: only the dreambooth method"),
        ({"method": "textual_inversion", "prior_preservation": True}, "prior_preservation: applies to"),
        ({"method": "lora", "batch_size": 65}, r"batch_size: expected a value in \[1, 64\], got 65"),
        ({"method": "lora", "lora_targets": "convs"}, "lora_targets: expected one of attention, all, got 'convs'"),
    ]
    for data, message in cases:
        with pytest.raises(FineTuneError, match=message):
            FineTuneSettings.from_dict(data)


def test_the_command_line_trains_prints_progress_and_refuses_bad_arguments(tiny_model_dir, photos, tmp_path, capsys):
    from generation.cli import main

    output = tmp_path / "dog-lora"
    common = ["--instance-prompt", "a photo of sks dog", "--class-prompt", "a photo of dog", "--resolution", "32"]
    code = main(
        [
            "fine-tune",
            str(tiny_model_dir),
            str(photos[0].parent),
            str(output),
            "--method",
            "lora",
            "--steps",
            "2",
            "--seed",
            "3",
            *common,
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "step 1/2  loss " in captured.err and "step 2/2  loss " in captured.err
    assert f"wrote lora weights to {output}" in captured.out
    assert json.loads((output / "manifest.json").read_text())["seed"] == 3
    assert not output.with_name("dog-lora.work").exists()  # the default work folder goes after success

    for arguments, message in [
        (["--steps", "0"], r"error: steps: expected a value in [1, 100000], got 0"),
        (["--learning-rate", "10"], "error: learning_rate: expected a value in [1e-08, 0.01], got 10.0"),
    ]:
        code = main(
            [
                "fine-tune",
                str(tiny_model_dir),
                str(photos[0].parent),
                str(tmp_path / "x"),
                "--method",
                "lora",
                *common,
                *arguments,
            ]
        )
        err = capsys.readouterr().err
        assert code == 2 and err.strip() == message
    code = main(
        ["fine-tune", str(tiny_model_dir), str(tmp_path / "nowhere"), str(tmp_path / "x"), "--method", "lora", *common]
    )
    assert code == 2 and "expected a folder of JPEG/PNG/WebP photos" in capsys.readouterr().err
