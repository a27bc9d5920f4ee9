"""``fine_tune``: DreamBooth, DreamBooth-LoRA or Textual Inversion on a Stable Diffusion 1.x/2.x base.

The objective is diffusers' DreamBooth one: encode each photo with the VAE, noise it at a random
timestep with ``DDPMScheduler.add_noise``, and regress the UNet's prediction on the noise (or on the
velocity for v-prediction models), plus ``prior_loss_weight`` times the same loss on class images the
base model generated itself when prior preservation is on. AdamW, diffusers' constant schedule
(``get_scheduler``), gradients clipped at norm 1.

Every random draw of step ``s`` (which photos, the latent sample, the noise, the timesteps) comes
from a generator seeded with (seed, s), so a run resumed from a checkpoint takes exactly the steps
the uninterrupted run would have taken.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from generation.backbones import BACKBONE_NAMES, SD
from generation.errors import FineTuneError, FineTuneStopped, ModelLoadError
from generation.training import checkpoints
from generation.training.methods import build_method, concept_words
from generation.training.photos import file_sha256, load_photos, mix, sample_index, to_tensor
from generation.training.settings import FineTuneResult, FineTuneSettings, Progress

CLASS_IMAGE_STEPS = 50  # DDIM steps per class image (diffusers' script uses the pipeline's default, 50)
CLASS_GUIDANCE = 7.5  # the StableDiffusionPipeline default
MAX_GRAD_NORM = 1.0  # diffusers' --max_grad_norm default
ADAM = {"betas": (0.9, 0.999), "weight_decay": 1e-2, "eps": 1e-8}  # diffusers' --adam_* defaults


def fine_tune(
    base_model: str | os.PathLike,
    photos: Sequence[str | os.PathLike],
    instance_prompt: str,
    class_prompt: str,
    settings: FineTuneSettings,
    output_dir: str | os.PathLike,
    *,
    work_dir: str | os.PathLike | None = None,
    device: str = "auto",
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> FineTuneResult:
    """Fine-tune ``base_model`` on ``photos``; write the result into ``output_dir`` (which must not exist
    or be empty) and return where it went.

    ``work_dir`` keeps checkpoints every ``settings.checkpoint_every`` steps and the class images; when
    it holds a checkpoint of the same run, training resumes from the newest one. Without it, a
    temporary folder is used and removed, and nothing can be resumed. ``on_progress`` gets a
    ``Progress`` after every step; when ``should_stop()`` returns True after a step, a checkpoint is
    written and FineTuneStopped raised. FineTuneError for bad input, with nothing left in ``output_dir``.
    """
    started = time.monotonic()
    if not isinstance(settings, FineTuneSettings):
        raise FineTuneError(f"settings: expected FineTuneSettings, got {type(settings).__name__}")
    settings.validate()
    instance_prompt, class_prompt = _check_prompts(instance_prompt, class_prompt)
    output_dir = _check_output_dir(Path(output_dir).expanduser())
    photo_paths, images = load_photos(photos)
    device = _device(device)
    pipeline = _load_base(base_model)
    resolution = _resolution(pipeline, settings)
    fingerprint = {
        "base_model": _model_id(base_model),
        "settings": {k: v for k, v in settings.to_dict().items() if k != "checkpoint_every"},
        "instance_prompt": instance_prompt,
        "class_prompt": class_prompt,
        "photos": [file_sha256(p) for p in photo_paths],
    }
    with _work_folder(work_dir) as (work, keep):
        run = _Run(pipeline, settings, device, resolution, work if keep else None, fingerprint, should_stop)
        class_images = run.class_images(work, class_prompt) if settings.prior_preservation else []
        run.prepare(images, class_images, instance_prompt, class_prompt)
        run.train(on_progress)
        manifest = _manifest(run, base_model, instance_prompt, class_prompt, photo_paths, started)
        _write_output(output_dir, run.method.save, manifest)
    return FineTuneResult(
        output_dir=output_dir,
        format=settings.format,
        steps_done=run.step,
        resumed_from=run.resumed_from,
        wall_seconds=time.monotonic() - started,
        manifest=manifest,
    )


class _Run:
    """One training run's state: the pipeline, the method, the optimizer, the step."""

    def __init__(self, pipeline, settings, device, resolution, work_dir, fingerprint, should_stop):
        import torch

        self.pipeline, self.settings, self.device, self.resolution = pipeline, settings, device, resolution
        self.work_dir, self.fingerprint = work_dir, fingerprint
        self.should_stop = should_stop or (lambda: False)
        self.autocast_dtype = None
        if device.startswith("cuda"):
            self.autocast_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.step = 0
        self.resumed_from = None
        self.previous_seconds = 0.0
        self.segment_started = time.monotonic()
        self.last_loss = float("nan")
        pipeline.to(device)
        pipeline.set_progress_bar_config(disable=True)

    @property
    def precision(self) -> str:
        return "float32" if self.autocast_dtype is None else f"float32 weights, {self.autocast_dtype} autocast"

    def autocast(self):
        import torch

        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.autocast_dtype)

    # ------------------------------------------------------------------ prior preservation

    def class_images(self, work: Path, class_prompt: str) -> list:
        """The class images, generated by the base model itself from ``class_prompt``, cached in ``work``."""
        import torch
        from PIL import Image

        folder = work / "class_images"
        info = {
            "base_model": self.fingerprint["base_model"],
            "class_prompt": class_prompt,
            "resolution": self.resolution,
            "seed": self.settings.seed,
            "steps": CLASS_IMAGE_STEPS,
        }
        info_file = folder / "info.json"
        if folder.exists() and (not info_file.is_file() or json.loads(info_file.read_text()) != info):
            shutil.rmtree(folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            info_file.write_text(json.dumps(info, indent=2, sort_keys=True))
        except OSError as exc:
            raise FineTuneError(f"class images {folder}: could not write: {exc}") from exc
        images = []
        for index in range(self.settings.class_images):
            path = folder / f"{index:04d}.png"
            if not path.is_file():
                if self.should_stop():
                    raise FineTuneStopped(f"stopped while generating class images ({index} cached in {folder})", 0)
                generator = torch.Generator().manual_seed(mix(self.settings.seed, "class-image", index))
                with torch.no_grad(), self.autocast():
                    image = self.pipeline(
                        class_prompt,
                        height=self.resolution,
                        width=self.resolution,
                        num_inference_steps=CLASS_IMAGE_STEPS,
                        guidance_scale=CLASS_GUIDANCE,
                        generator=generator,
                    ).images[0]
                _save_atomically(image, path)
            with Image.open(path) as stored:
                images.append(stored.convert("RGB"))
        return images

    # ------------------------------------------------------------------ set-up

    def prepare(self, images, class_images, instance_prompt: str, class_prompt: str) -> None:
        import torch
        from diffusers import DDPMScheduler
        from diffusers.optimization import get_scheduler

        pipeline, settings = self.pipeline, self.settings
        self.noise_scheduler = DDPMScheduler.from_config(pipeline.scheduler.config)
        prediction = self.noise_scheduler.config.prediction_type
        if prediction not in ("epsilon", "v_prediction"):
            raise FineTuneError(f"base model: expected an epsilon or v_prediction scheduler, got {prediction!r}")
        self.concept_token, initializer = concept_words(instance_prompt, class_prompt)
        self.instance_latents = self._encode_images(images)
        self.class_latents = self._encode_images(class_images) if class_images else []
        self.method = build_method(pipeline, settings, self.concept_token, initializer, self.autocast_dtype)
        pipeline.to(self.device)
        self.instance_ids = self._token_ids(instance_prompt)
        self.class_ids = self._token_ids(class_prompt)
        if not self.method.trains_text:
            with torch.no_grad():
                self.instance_hidden = self._encode_text(self.instance_ids)
                self.class_hidden = self._encode_text(self.class_ids)
        self.parameters = self.method.trainable()
        self.optimizer = torch.optim.AdamW(list(self.parameters.values()), lr=settings.effective_learning_rate, **ADAM)
        self.lr_scheduler = get_scheduler("constant", optimizer=self.optimizer)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.autocast_dtype == torch.float16)
        if self.work_dir is not None:
            self._resume()

    def _encode_images(self, images) -> list:
        """Each image's latent distribution, once: the VAE is frozen, and each step samples from it."""
        import torch

        vae = self.pipeline.vae
        distributions = []
        with torch.no_grad():
            for image in images:
                pixels = to_tensor(image, self.resolution)[None].to(self.device, vae.dtype)
                distributions.append(vae.encode(pixels).latent_dist)
        return distributions

    def _token_ids(self, prompt: str):
        tokenizer = self.pipeline.tokenizer
        return tokenizer(
            prompt, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
        ).input_ids.to(self.device)

    def _encode_text(self, ids):
        return self.pipeline.text_encoder(ids)[0]

    def _resume(self) -> None:
        import torch

        checkpoints.clear_staging(self.work_dir)
        found = checkpoints.latest(self.work_dir)
        if found is None:
            return
        checkpoints.check_fingerprint(found, self.fingerprint)
        if found.step > self.settings.steps:
            raise FineTuneError(f"checkpoint {found.path}: step {found.step} is past steps={self.settings.steps}")
        tensors, optimizer_state, extra = checkpoints.load(found)
        self.method.load_trainable(tensors)
        self.optimizer.load_state_dict(optimizer_state)
        self.lr_scheduler.load_state_dict(extra["lr_scheduler"])
        self.scaler.load_state_dict(extra["scaler"])
        torch.set_rng_state(extra["rng"])
        if extra.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(extra["cuda_rng"])
        self.step = self.resumed_from = found.step
        self.previous_seconds = found.wall_seconds

    # ------------------------------------------------------------------ training

    def train(self, on_progress) -> None:
        total = self.settings.steps
        first, started = self.step, time.monotonic()
        self.method.train_mode()
        while self.step < total:
            self.last_loss = self._train_step(self.step)
            self.step += 1
            elapsed = time.monotonic() - started
            speed = (self.step - first) / elapsed if elapsed > 0 else 0.0
            if on_progress is not None:
                eta = (total - self.step) / speed if speed > 0 else None
                on_progress(Progress(self.step, total, self.last_loss, speed, eta))
            checkpointed = False
            if self.step % self.settings.checkpoint_every == 0 and self.step < total:
                checkpointed = self._checkpoint() is not None
            if self.step < total and self.should_stop():
                path = self._checkpoint() if not checkpointed else self.work_dir / f"checkpoint-{self.step}"
                where = f"checkpoint {path}" if path else "no work_dir, so no checkpoint"
                raise FineTuneStopped(f"stopped at step {self.step} of {total}; {where}", self.step, path)

    def _train_step(self, step: int) -> float:
        import torch
        import torch.nn.functional as F

        settings, unet = self.settings, self.pipeline.unet
        generator = torch.Generator().manual_seed(mix(settings.seed, "step", step))
        size = settings.batch_size
        positions = range(step * size, (step + 1) * size)
        chosen = [
            self.instance_latents[sample_index(settings.seed, "instance", p, len(self.instance_latents))]
            for p in positions
        ]
        if settings.prior_preservation:
            chosen += [
                self.class_latents[sample_index(settings.seed, "class", p, len(self.class_latents))] for p in positions
            ]
        scaling = self.pipeline.vae.config.scaling_factor
        latents = torch.cat([d.sample(generator=generator) for d in chosen]).float() * scaling
        noise = torch.randn(latents.shape, generator=generator).to(self.device)
        timesteps = torch.randint(
            0, self.noise_scheduler.config.num_train_timesteps, (latents.shape[0],), generator=generator
        ).to(self.device)
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        hidden = self._hidden_states(size)
        with self.autocast():
            prediction = unet(noisy, timesteps, hidden).sample
        if self.noise_scheduler.config.prediction_type == "v_prediction":
            target = self.noise_scheduler.get_velocity(latents, noise, timesteps)
        else:
            target = noise
        if settings.prior_preservation:
            prediction, prior_prediction = prediction.chunk(2)
            target, prior_target = target.chunk(2)
            loss = F.mse_loss(prediction.float(), target.float()) + settings.prior_loss_weight * F.mse_loss(
                prior_prediction.float(), prior_target.float()
            )
        else:
            loss = F.mse_loss(prediction.float(), target.float())
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(list(self.parameters.values()), MAX_GRAD_NORM)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.lr_scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.method.after_step()
        return float(loss.detach())

    def _hidden_states(self, size: int):
        import torch

        if self.method.trains_text:
            with self.autocast():
                instance = self._encode_text(self.instance_ids)
                classes = self._encode_text(self.class_ids) if self.settings.prior_preservation else None
        else:
            instance, classes = self.instance_hidden, self.class_hidden
        parts = [instance.expand(size, -1, -1)]
        if self.settings.prior_preservation:
            parts.append(classes.expand(size, -1, -1))
        return torch.cat(parts)

    def _checkpoint(self) -> Path | None:
        import torch

        if self.work_dir is None:
            return None
        extra = {
            "lr_scheduler": self.lr_scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        }
        meta = {"wall_seconds": self.wall_seconds, "fingerprint": self.fingerprint}
        return checkpoints.save(self.work_dir, self.step, self.parameters, self.optimizer, extra, meta)

    @property
    def wall_seconds(self) -> float:
        """Training time over every resumed segment of the run."""
        return self.previous_seconds + time.monotonic() - self.segment_started


# ---------------------------------------------------------------------- inputs


def _check_prompts(instance_prompt, class_prompt) -> tuple[str, str]:
    for name, value in (("instance_prompt", instance_prompt), ("class_prompt", class_prompt)):
        if not isinstance(value, str) or not value.strip():
            raise FineTuneError(f"{name}: expected a non-empty prompt such as 'a photo of sks dog', got {value!r}")
    return instance_prompt.strip(), class_prompt.strip()


def _check_output_dir(path: Path) -> Path:
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise FineTuneError(
            f"output_dir {path}: expected a new or empty folder, found {'a file' if path.is_file() else 'files in it'}"
        )
    return path


def _device(device: str) -> str:
    from generation.pipelines import resolve_device

    try:
        return resolve_device(device)
    except ModelLoadError as exc:
        raise FineTuneError(str(exc)) from exc


def _model_id(model) -> str:
    path = Path(model).expanduser()
    return str(path.resolve()) if path.exists() else str(model)


def _load_base(model):
    """The base pipeline through ``generation.pipelines`` (same checks and messages); SD 1.x/2.x only."""
    from generation.pipelines import identify_backbone, load_base_pipeline

    try:
        backbone = identify_backbone(model)
        if backbone != SD:
            raise FineTuneError(
                f"base model {model}: fine-tuning takes {BACKBONE_NAMES[SD]} pipelines, "
                f"this is {BACKBONE_NAMES[backbone]}"
            )
        return load_base_pipeline(model)
    except ModelLoadError as exc:
        raise FineTuneError(f"base model: {exc}") from exc


def _resolution(pipeline, settings: FineTuneSettings) -> int:
    scale = pipeline.vae_scale_factor
    native = pipeline.unet.config.sample_size * scale
    resolution = settings.resolution or native
    if resolution % scale:
        raise FineTuneError(f"resolution: expected a multiple of the VAE's scale factor {scale}, got {resolution}")
    return resolution


@contextlib.contextmanager
def _work_folder(work_dir):
    """(folder, kept): the caller's work folder, or a temporary one removed afterwards."""
    if work_dir is not None:
        path = Path(work_dir).expanduser()
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FineTuneError(f"work_dir {path}: could not create it: {exc}") from exc
        yield path, True
        return
    path = Path(tempfile.mkdtemp(prefix="fine-tune-"))
    try:
        yield path, False
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _save_atomically(image, path: Path) -> None:
    partial = path.with_name(f".{path.name}.partial")
    try:
        image.save(partial, format="PNG")
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise FineTuneError(f"class image {path}: could not write it: {exc}") from exc


# ---------------------------------------------------------------------- output


def _versions() -> dict:
    import diffusers
    import peft
    import torch
    import transformers

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
    }


def _manifest(run: _Run, base_model, instance_prompt, class_prompt, photo_paths, started) -> dict:
    settings = run.settings
    return {
        "format": settings.format,
        "method": settings.method,
        "base_model": str(base_model),
        "instance_prompt": instance_prompt,
        "class_prompt": class_prompt,
        "concept_token": run.concept_token,
        "settings": settings.to_dict(),
        "learning_rate": settings.effective_learning_rate,
        "resolution": run.resolution,
        "seed": settings.seed,
        "steps": run.step,
        "resumed_from": run.resumed_from,
        "wall_seconds": round(run.wall_seconds, 3),
        "device": run.device,
        "precision": run.precision,
        "photos": [{"name": p.name, "sha256": file_sha256(p)} for p in photo_paths],
        "versions": _versions(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _write_output(output_dir: Path, save: Callable[[Path], None], manifest: dict) -> None:
    """Write the result into a staging folder beside ``output_dir``, hash it, and rename it into place."""
    staging = None
    try:
        output_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}-", suffix=".partial", dir=output_dir.parent))
        save(staging)
        files = sorted(p for p in staging.rglob("*") if p.is_file())
        manifest["files"] = {str(p.relative_to(staging)): file_sha256(p) for p in files}
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        staging.chmod(0o755)  # mkdtemp makes it owner-only; the web server may run as another user
        if output_dir.exists():
            output_dir.rmdir()  # checked empty before training
        os.rename(staging, output_dir)
    except checkpoints.write_errors() as exc:
        raise FineTuneError(f"output_dir {output_dir}: could not write the result: {exc}") from exc
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
