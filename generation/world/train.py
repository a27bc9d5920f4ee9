"""``python -m generation world train DIR``: render the world and train its models, seeded and resumable.

Phases, each written atomically to its own folder and skipped when already there (its ``.complete``
marker records how long it took):

1. ``data``: the pictures (a general set without subjects for the text-to-image model, a set with
   subjects for the metric models and the judge), cached as .npz, rendered only when a phase needs them;
2. ``pipeline/vae``: an AutoencoderKL (scale factor 4), L1 + L2 reconstruction plus a small KL term,
   its posterior then made a point (``point_posterior``);
3. ``pipeline``: UNet and CLIP text encoder trained together on VAE latents with 10% empty captions
   (classifier-free guidance), EMA weights; checkpoints every ``CHECKPOINT_EVERY`` steps; then the VAE
   is refined on pictures with subjects, the UNet's latent space held (``refine_vae_for_subjects``),
   the UNet and text encoder go on learning on the refined VAE's latents (``refine_unet``), and last
   with a loss that weighs the object up (``emphasise_objects``);
4. ``judge``: the classifier of shape, colour, pattern, scene and subject;
5. ``subjects/<slug>``: a DreamBooth-LoRA of every subject (on every layer, ``Plan.subject_targets``),
   trained by ``generation.training.fine_tune`` on its rendered reference photos ("a sks ball" /
   "a ball"), resumable from its checkpoints;
6. ``clip``: a CLIPModel trained contrastively on pictures and captions;
7. ``dino``: a Dinov2Model whose CLS embedding is trained to tell object instances apart, whatever
   the scene (the property DINO-IS relies on).

Half of the metric models' and the judge's training pictures pass through the VAE first, so they read
generated pictures as well as rendered ones.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from generation.world import data as world_data
from generation.world import models
from generation.world.vocabulary import CONCEPT_TOKEN, SUBJECTS, Subject

CHECKPOINT_EVERY = 250
SUBJECT_WEIGHT = 3.0  # the refined VAE's reconstruction weight on pictures with subjects


@dataclass(frozen=True)
class Plan:
    """Sizes and step counts; ``quick()`` is a smoke-test plan that finishes in about a minute."""

    general_pictures: int = 24_000
    subject_pictures: int = 12_000
    vae_steps: int = 1200
    vae_batch: int = 32
    vae_refine_steps: int = 1500
    vae_refine_learning_rate: float = 1e-3
    unet_steps: int = 1200
    unet_batch: int = 64
    unet_learning_rate: float = 6e-4
    unet_refine_steps: int = 1500  # a second stage on the refined VAE's latents (refine_unet)
    unet_refine_learning_rate: float = 3e-4
    # a third stage whose loss weighs the object's square up (emphasise_objects)
    unet_object_steps: int = 1500
    unet_object_learning_rate: float = 3e-4
    unet_object_weight: float = 4.0
    clip_steps: int = 700
    clip_batch: int = 128
    dino_steps: int = 600
    judge_steps: int = 3000  # 700 read shapes right in 77% of fresh renders, 3000 in 99% (docs/world.md)
    classifier_batch: int = 64
    caption_dropout: float = 0.1
    subject_steps: int = 1600
    subject_batch: int = 4
    subject_learning_rate: float = 1e-3
    subject_rank: int = 8
    subject_targets: str = "all"  # generation.training's lora_targets; docs/world.md has what "attention" did
    # Without the prior, "a ball" comes to mean the subject too and Mixed has nothing to trade (docs/world.md).
    subject_prior_preservation: bool = True
    subject_class_images: int = 50

    @classmethod
    def quick(cls) -> Plan:
        return cls(
            general_pictures=512,
            subject_pictures=256,
            vae_steps=4,
            vae_batch=8,
            vae_refine_steps=3,
            unet_steps=6,
            unet_refine_steps=3,
            unet_object_steps=3,
            unet_batch=8,
            clip_steps=4,
            clip_batch=16,
            dino_steps=4,
            judge_steps=4,
            classifier_batch=16,
            subject_steps=3,
            subject_batch=1,
            subject_rank=4,
            subject_class_images=2,
        )


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def train_world(directory: str | os.PathLike, seed: int = 0, device: str = "auto", plan: Plan | None = None) -> Path:
    import torch

    from generation.pipelines import resolve_device

    plan = plan or Plan()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    device = resolve_device(device)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    work = directory / "work"
    work.mkdir(exist_ok=True)
    started = time.monotonic()
    # Rendered only when a phase that needs them runs: retraining one phase renders nothing else.
    general = _Memo(lambda: _rendered(work, GENERAL, plan.general_pictures, seed))
    mixed = _Memo(lambda: _rendered(work, MIXED, plan.subject_pictures, seed))
    tokenizer = models.world_tokenizer()
    general_vae = _phase(
        directory / "pipeline" / "vae", lambda out: _train_vae(out, general(), seed, plan, device), _load_vae
    )
    # The pipeline phase ends by refining the VAE for subjects; everything after reads that VAE.
    vae = _phase(
        directory / "pipeline",
        lambda out: _train_pipeline(out, work, general_vae, tokenizer, general(), mixed, seed, plan, device),
        lambda folder: _load_vae(folder / "vae"),
    )
    seen = _Memo(lambda: through_vae(vae, mixed().images, device))
    # The judge and the subjects first: what they measure can be read while CLIP and DINO train.
    _phase(directory / "judge", lambda out: _train_judge(out, mixed(), seen(), seed, plan, device))
    for subject in SUBJECTS:
        _phase(
            directory / "subjects" / subject.slug,
            lambda out, subject=subject: _train_subject(out, work, directory / "pipeline", subject, seed, plan, device),
        )
    _phase(directory / "clip", lambda out: _train_clip(out, tokenizer, mixed(), seen(), seed, plan, device))
    _phase(directory / "dino", lambda out: _train_dino(out, mixed(), seen(), seed, plan, device))
    _write_manifest(directory, seed, plan, time.monotonic() - started)
    log(f"world models in {directory} ({time.monotonic() - started:.0f} s)")
    return directory


class _Memo:
    def __init__(self, compute):
        self._compute, self._value = compute, None

    def __call__(self):
        if self._value is None:
            self._value = self._compute()
        return self._value


def _phase(folder: Path, build, load=None):
    """Run ``build(temporary folder)`` unless ``folder`` is complete; rename into place when done."""
    _recover_from_interrupted_parent(folder)
    marker = folder / ".complete"
    if not marker.exists():
        started = time.monotonic()
        partial = folder.with_name(folder.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        keep = list(folder.iterdir()) if folder.exists() else []
        partial.mkdir(parents=True)
        for child in keep:  # a parent phase keeps the sub-phases already complete (pipeline/vae)
            child.rename(partial / child.name)
        build(partial)
        finished = {"completed": time.strftime("%Y-%m-%dT%H:%M:%S"), "seconds": round(time.monotonic() - started)}
        (partial / ".complete").write_text(json.dumps(finished) + "\n")
        shutil.rmtree(folder, ignore_errors=True)
        partial.rename(folder)
    return load(folder) if load else None


def _recover_from_interrupted_parent(folder: Path) -> None:
    """A parent phase moves its complete sub-phases into its partial folder (pipeline.partial/vae); when
    the parent was interrupted, they are moved back instead of being trained again."""
    stale = folder.parent.with_name(folder.parent.name + ".partial") / folder.name
    if (stale / ".complete").exists() and not (folder / ".complete").exists():
        folder.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(folder, ignore_errors=True)
        stale.rename(folder)


# -- data -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _PictureSet:
    """One of the two picture sets: its share of pictures with subjects, and its render seed's offset."""

    name: str
    subject_share: float
    seed_offset: int

    def render_seed(self, seed: int) -> int:
        return seed * 10 + self.seed_offset

    def poses(self, count: int, seed: int) -> np.ndarray:
        return world_data.object_poses(count, self.render_seed(seed), self.subject_share)


GENERAL = _PictureSet("general", 0.0, 0)
MIXED = _PictureSet("mixed", 0.35, 1)


def _rendered(work: Path, picture_set: _PictureSet, count: int, seed: int):
    """The cached ``picture_set``, rendered first if absent."""
    name = picture_set.name
    path = work / f"{name}-{count}-{seed}.npz"
    if not path.exists():
        log(f"rendering {count} {name} pictures")
        rendered = world_data.render_set(count, picture_set.render_seed(seed), subject_share=picture_set.subject_share)
        partial = path.with_suffix(".partial.npz")
        rendered.save(partial)
        partial.rename(path)
    return world_data.RenderedSet.load(path)


def _as_tensor(images: np.ndarray):
    import torch

    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def _batch_indices(count: int, batch: int, seed: int, step: int) -> np.ndarray:
    """The batch of ``step``: a pure function of (seed, step), so a resumed run sees the same data."""
    return np.random.default_rng([seed, step]).integers(0, count, batch)


def _generator(seed: int, step: int, device: str):
    import torch

    return torch.Generator(device).manual_seed(seed * 1_000_003 + step)


def _cosine(optimizer, steps: int, warmup: int):
    from diffusers.optimization import get_scheduler

    return get_scheduler("cosine", optimizer, num_warmup_steps=warmup, num_training_steps=steps)


# -- VAE ------------------------------------------------------------------------------------------


def _train_vae(out: Path, general, seed: int, plan: Plan, device: str) -> None:
    import torch

    torch.manual_seed(seed)
    vae = models.build_vae().to(device).train()
    optimizer = torch.optim.AdamW(vae.parameters(), lr=2e-3, weight_decay=0.0)
    schedule = _cosine(optimizer, plan.vae_steps, 50)
    for step in range(plan.vae_steps):
        pixels = _as_tensor(general.images[_batch_indices(len(general), plan.vae_batch, seed, step)]).to(device)
        posterior = vae.encode(pixels).latent_dist
        # The decoder learns from the posterior mean: sampled latents start with unit noise, which a
        # short training never anneals away and which blurs colours and edges.
        reconstruction = vae.decode(posterior.mean).sample
        error = reconstruction - pixels
        loss = error.abs().mean() + error.pow(2).mean() + 1e-6 * posterior.kl().mean()
        loss.backward()
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        if step % 50 == 0 or step == plan.vae_steps - 1:
            log(f"vae step {step + 1}/{plan.vae_steps} loss {loss.item():.4f}")
    vae.eval()
    point_posterior(vae)
    with torch.inference_mode():
        sample = _as_tensor(general.images[:512]).to(device)
        spread = float(vae.encode(sample).latent_dist.mean.std())
    vae.register_to_config(scaling_factor=1.0 / spread)
    vae.save_pretrained(out)


def point_posterior(vae) -> None:
    """Make the encoder's posterior a point at its mean.

    The decoder and the UNet learn from posterior means, and the tiny KL weight leaves the posterior's
    spread at about 1, as large as the latents themselves; DreamBooth (diffusers' and ours) samples
    from the posterior, so without this it would fine-tune on noise-dominated latents. The log-variance
    rows of ``quant_conv`` are set to diffusers' lower clamp; the mean rows are untouched.
    """
    import torch

    channels = vae.config.latent_channels
    with torch.no_grad():
        vae.quant_conv.weight[channels:] = 0.0
        vae.quant_conv.bias[channels:] = -30.0


def refine_vae_for_subjects(vae, mixed, seed: int, plan: Plan, device: str):
    """A copy of ``vae`` refined on pictures with subjects, the general pictures' latents held in place.

    The VAE first learns from general pictures only, like the UNet, and so turns a subject's second
    colour into a shade of its first (yellow with blue stripes comes back pink). Refining on pictures
    with subjects (weighted up) teaches it to carry them; an anchor on the latents of the pictures
    without subjects keeps the latent space the UNet learned, so the UNet goes on from where it was
    (``refine_unet``) rather than starting again.
    """
    import copy

    import torch

    anchor = copy.deepcopy(vae).to(device).eval().requires_grad_(False)
    refined = copy.deepcopy(vae).to(device).train().requires_grad_(True)
    optimizer = torch.optim.AdamW(refined.parameters(), lr=plan.vae_refine_learning_rate, weight_decay=0.0)
    schedule = _cosine(optimizer, plan.vae_refine_steps, 20)
    has_subject = torch.from_numpy(mixed.labels["subject"] > 0)
    for step in range(plan.vae_refine_steps):
        rows = _batch_indices(len(mixed), plan.vae_batch, seed + 7, step)
        pixels = _as_tensor(mixed.images[rows]).to(device)
        subjects = has_subject[rows].to(device)
        latents = refined.encode(pixels).latent_dist.mean
        error = refined.decode(latents).sample - pixels
        weight = torch.where(subjects, SUBJECT_WEIGHT, 1.0).view(-1, 1, 1, 1)
        with torch.no_grad():
            held = anchor.encode(pixels[~subjects]).latent_dist.mean
        drift = (latents[~subjects] - held).pow(2).mean() if len(held) else latents.sum() * 0
        loss = (weight * (error.abs() + error.pow(2))).mean() + drift
        loss.backward()
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        if step % 50 == 0 or step == plan.vae_refine_steps - 1:
            log(
                f"vae refinement step {step + 1}/{plan.vae_refine_steps} loss {loss.item():.4f} "
                f"drift {drift.item():.5f}"
            )
    refined.eval().requires_grad_(False)
    point_posterior(refined)
    return refined


def _load_vae(folder: Path):
    from diffusers import AutoencoderKL

    return AutoencoderKL.from_pretrained(folder).eval()


def _encode(vae, images: np.ndarray, device: str, batch: int = 256) -> np.ndarray:
    import torch

    vae.to(device)
    parts = []
    with torch.inference_mode():
        for start in range(0, len(images), batch):
            pixels = _as_tensor(images[start : start + batch]).to(device)
            parts.append(vae.encode(pixels).latent_dist.mean.cpu().numpy())
    return np.concatenate(parts) * vae.config.scaling_factor


def through_vae(vae, images: np.ndarray, device: str, batch: int = 256) -> np.ndarray:
    """Every picture of ``images`` ((N, H, W, 3) uint8) encoded and decoded: how a generated picture looks."""
    import torch

    vae.to(device)
    parts = []
    with torch.inference_mode():
        for start in range(0, len(images), batch):
            pixels = _as_tensor(images[start : start + batch]).to(device)
            decoded = vae.decode(vae.encode(pixels).latent_dist.mean).sample
            parts.append(((decoded.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy())
    return np.concatenate(parts)


# -- UNet and text encoder ------------------------------------------------------------------------


def _weights_digest(model) -> str:
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]


def _token_ids(tokenizer, captions) -> np.ndarray:
    return np.asarray(
        tokenizer(list(captions), padding="max_length", max_length=tokenizer.model_max_length, truncation=True)[
            "input_ids"
        ],
        dtype=np.int64,
    )


def _train_pipeline(out: Path, work: Path, vae, tokenizer, general, mixed, seed: int, plan: Plan, device: str) -> None:
    import torch

    ids = torch.from_numpy(_token_ids(tokenizer, general.captions))
    empty = torch.from_numpy(_token_ids(tokenizer, [""]))[0]
    torch.manual_seed(seed)
    unet = models.build_unet().to(device)
    text_encoder = models.build_text_encoder(tokenizer).to(device)
    first_stage = _DenoisingStage(
        "text-to-image", plan.unet_steps, plan.unet_learning_rate, 0, work / "pipeline-checkpoint.pt"
    )
    latents = _general_latents(work, vae, general, seed, device)
    first_stage.train(unet, text_encoder, latents, ids, empty, seed, plan, device)
    vae = _refined_vae(work, vae, mixed, seed, plan, device)
    latents = _general_latents(work, vae, general, seed, device)
    refine_unet(unet, text_encoder, latents, ids, empty, work, seed, plan, device)
    poses = GENERAL.poses(len(general), seed)
    emphasise_objects(unet, text_encoder, latents, ids, empty, poses, work, seed, plan, device)
    save_pipeline(out, vae, unet.eval(), text_encoder.eval(), tokenizer)
    for stage_checkpoint in work.glob("pipeline-*checkpoint.pt"):
        stage_checkpoint.unlink()


def refine_unet(unet, text_encoder, latents, ids, empty, work: Path, seed: int, plan: Plan, device: str) -> None:
    """Go on training ``unet`` and ``text_encoder`` on the latents of the refined VAE.

    The first stage learned from the unrefined VAE's latents, which the refinement moves a little; this
    stage, with its own warm-up, cosine schedule and EMA, learns the latent space the pipeline ships
    with, and gives the model the longer schedule that prompt following needs (docs/world.md).
    """
    stage = _DenoisingStage(
        "text-to-image (refined VAE)",
        plan.unet_refine_steps,
        plan.unet_refine_learning_rate,
        plan.unet_steps,
        work / "pipeline-refine-checkpoint.pt",
    )
    stage.train(unet, text_encoder, latents, ids, empty, seed, plan, device)


def emphasise_objects(unet, text_encoder, latents, ids, empty, poses, work: Path, seed: int, plan: Plan, device: str):
    """Go on training with a denoising loss that weighs the object's square ``1 + unet_object_weight``
    times the background.

    The object covers about a tenth of a picture, so an even loss spends most of the model on the
    scene: the first two stages learned every scene but drew "a ball" and "a box" as the same blob
    (docs/world.md). ``poses`` are the pictures' object poses (``generation.world.data.object_poses``).
    """
    stage = _DenoisingStage(
        "text-to-image (objects weighed up)",
        plan.unet_object_steps,
        plan.unet_object_learning_rate,
        plan.unet_steps + plan.unet_refine_steps,
        work / "pipeline-objects-checkpoint.pt",
    )
    weights = object_weights(poses, latents.shape[-1], plan.unet_object_weight)
    stage.train(unet, text_encoder, latents, ids, empty, seed, plan, device, weights)


OBJECT_SQUARE = 0.55  # half the side of an object's square, in object sizes: rotated corners stay inside


def object_weights(poses: np.ndarray, latent_size: int, weight: float):
    """(N, 1, S, S) loss weights on an S x S latent grid: 1 on the background, 1 + ``weight`` on the
    square around each picture's object (``poses``: (N, 3) centre x, centre y and size)."""
    import torch

    centres = (np.arange(latent_size) + 0.5) / latent_size
    half = OBJECT_SQUARE * poses[:, 2:3]
    inside_x = np.abs(centres[None, :] - poses[:, 0:1]) <= half
    inside_y = np.abs(centres[None, :] - poses[:, 1:2]) <= half
    square = inside_y[:, :, None] & inside_x[:, None, :]
    return torch.from_numpy(1.0 + weight * square[:, None].astype(np.float32))


def _general_latents(work: Path, vae, general, seed: int, device: str):
    import torch

    # keyed by the VAE's weights too: a retrained VAE never reuses another one's latents
    path = work / f"latents-{len(general)}-{seed}-{_weights_digest(vae)}.npy"
    if not path.exists():
        log("encoding the general pictures with the VAE")
        np.save(path.with_suffix(".partial.npy"), _encode(vae, general.images, device))
        path.with_suffix(".partial.npy").rename(path)
    return torch.from_numpy(np.load(path))


def _refined_vae(work: Path, vae, mixed, seed: int, plan: Plan, device: str):
    """``refine_vae_for_subjects``, kept in ``work`` so that an interrupted pipeline phase does not redo it."""
    folder = work / f"vae-refined-{_weights_digest(vae)}-{plan.vae_refine_steps}"
    if not (folder / ".complete").exists():
        refined = refine_vae_for_subjects(vae, mixed(), seed, plan, device)
        shutil.rmtree(folder, ignore_errors=True)
        refined.save_pretrained(folder)
        (folder / ".complete").write_text("")
    return _load_vae(folder)


@dataclass(frozen=True)
class _DenoisingStage:
    """Denoising training of the UNet and the text encoder for ``steps`` steps, checkpointed every
    ``CHECKPOINT_EVERY`` steps and at its end; ``first_step`` offsets the stage's batches and noise
    from those of the stages before it."""

    name: str
    steps: int
    learning_rate: float
    first_step: int
    checkpoint: Path

    def train(self, unet, text_encoder, latents, ids, empty, seed: int, plan: Plan, device: str, weights=None) -> None:
        """``weights``: optional (N, 1, H, W) per-position weights of the loss (``object_weights``)."""
        import torch
        from diffusers import DDPMScheduler
        from diffusers.training_utils import EMAModel

        trained = [*unet.parameters(), *text_encoder.parameters()]
        optimizer = torch.optim.AdamW(trained, lr=self.learning_rate, weight_decay=0.01)
        schedule = _cosine(optimizer, self.steps, min(100, self.steps // 10))
        ema = EMAModel(trained, decay=0.999, use_ema_warmup=True, power=2 / 3)
        noise_schedule = DDPMScheduler.from_config(models.tiny_scheduler().config)
        done = 0
        if self.checkpoint.exists():
            state = torch.load(self.checkpoint, weights_only=False)
            unet.load_state_dict(state["unet"])
            text_encoder.load_state_dict(state["text_encoder"])
            optimizer.load_state_dict(state["optimizer"])
            schedule.load_state_dict(state["schedule"])
            ema.load_state_dict(state["ema"])
            done = state["step"]
            log(f"resuming {self.name} at step {done}")
        unet.train()
        text_encoder.train()
        started, resumed_at = time.monotonic(), done
        while done < self.steps:
            step = self.first_step + done
            rows = _batch_indices(len(latents), plan.unet_batch, seed, step)
            rng = np.random.default_rng([seed, step, 1])
            batch_ids = ids[rows].clone()
            batch_ids[torch.from_numpy(rng.random(len(rows)) < plan.caption_dropout)] = empty
            clean = latents[rows].to(device)
            generator = _generator(seed, step, "cpu")
            noise = torch.randn(clean.shape, generator=generator).to(device)
            timesteps = torch.randint(0, noise_schedule.config.num_train_timesteps, (len(rows),), generator=generator)
            noisy = noise_schedule.add_noise(clean, noise, timesteps.to(device))
            states = text_encoder(batch_ids.to(device))[0]
            error = (unet(noisy, timesteps.to(device), states).sample - noise).pow(2)
            if weights is None:
                loss = error.mean()
            else:
                weight = weights[rows].to(device)
                loss = (error * weight).mean() / weight.mean()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trained, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            ema.step(trained)
            done += 1
            if done % 25 == 0 or done == self.steps:
                rate = (done - resumed_at) / (time.monotonic() - started)
                log(
                    f"{self.name} step {done}/{self.steps} loss {loss.item():.4f} "
                    f"({rate:.2f} steps/s, {(self.steps - done) / rate / 60:.1f} min left)"
                )
            if done % CHECKPOINT_EVERY == 0 or done == self.steps:
                state = {"unet": unet.state_dict(), "text_encoder": text_encoder.state_dict()}
                state |= {"optimizer": optimizer.state_dict(), "schedule": schedule.state_dict()}
                _save_atomic(state | {"ema": ema.state_dict(), "step": done}, self.checkpoint)
        ema.copy_to(trained)


def save_pipeline(out: Path, vae, unet, text_encoder, tokenizer) -> None:
    """The pipeline in the diffusers layout, its UNet stored in half precision to fit the size budget
    (the platform loads every component as float32, so sampling is unchanged but for the rounding)."""
    import torch

    models.build_pipeline(vae, unet, text_encoder, tokenizer).save_pretrained(out, safe_serialization=True)
    unet.to(torch.float16).save_pretrained(out / "unet", safe_serialization=True)
    unet.to(torch.float32)


def _save_atomic(state: dict, path: Path) -> None:
    import torch

    partial = path.with_suffix(".partial")
    torch.save(state, partial)
    partial.rename(path)


# -- metric models and judge ----------------------------------------------------------------------


def _pictures(mixed, seen: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rendered or VAE-decoded, by a coin per picture."""
    use_seen = rng.random(len(rows)) < 0.5
    return np.where(use_seen[:, None, None, None], seen[rows], mixed.images[rows])


def _normalised(images: np.ndarray, settings: dict):
    import torch

    pixels = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(settings["image_mean"]).view(1, 3, 1, 1)
    std = torch.tensor(settings["image_std"]).view(1, 3, 1, 1)
    return (pixels - mean) / std


def _train_clip(out: Path, tokenizer, mixed, seen, seed: int, plan: Plan, device: str) -> None:
    import torch

    torch.manual_seed(seed + 3)
    clip = models.build_clip(tokenizer).to(device).train()
    ids = torch.from_numpy(_token_ids(tokenizer, mixed.captions))
    optimizer = torch.optim.AdamW(clip.parameters(), lr=1e-3, weight_decay=0.05)
    schedule = _cosine(optimizer, plan.clip_steps, 50)
    for step in range(plan.clip_steps):
        rows = _batch_indices(len(mixed), plan.clip_batch, seed + 3, step)
        pixels = _normalised(
            _pictures(mixed, seen, rows, np.random.default_rng([seed, step, 3])), models.CLIP_PREPROCESSING
        )
        output = clip(input_ids=ids[rows].to(device), pixel_values=pixels.to(device), return_loss=True)
        output.loss.backward()
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        if step % 50 == 0 or step == plan.clip_steps - 1:
            log(f"clip step {step + 1}/{plan.clip_steps} loss {output.loss.item():.4f}")
    clip.eval().save_pretrained(out)
    tokenizer.save_pretrained(out)
    models.write_preprocessing(out, models.CLIP_PREPROCESSING)


def _identity(mixed) -> np.ndarray:
    """One class per object instance: shape x colour x pattern, and one per subject."""
    labels = mixed.labels
    general = (labels["shape"] * 8 + labels["colour"]) * 4 + labels["pattern"]
    return np.where(labels["subject"] > 0, 6 * 8 * 4 - 1 + labels["subject"], general)


def _train_dino(out: Path, mixed, seen, seed: int, plan: Plan, device: str) -> None:
    import torch

    torch.manual_seed(seed + 4)
    dino = models.build_dino().to(device).train()
    classes = torch.from_numpy(_identity(mixed))
    head = torch.nn.Linear(models.EMBEDDING_WIDTH, 6 * 8 * 4 + 6).to(device)
    parameters = [*dino.parameters(), *head.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=1e-3, weight_decay=0.05)
    schedule = _cosine(optimizer, plan.dino_steps, 50)
    for step in range(plan.dino_steps):
        rows = _batch_indices(len(mixed), plan.classifier_batch, seed + 4, step)
        pixels = _normalised(
            _pictures(mixed, seen, rows, np.random.default_rng([seed, step, 4])), models.DINO_PREPROCESSING
        )
        logits = head(dino(pixel_values=pixels.to(device)).pooler_output)
        loss = torch.nn.functional.cross_entropy(logits, classes[rows].to(device))
        loss.backward()
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        if step % 50 == 0 or step == plan.dino_steps - 1:
            log(f"dino step {step + 1}/{plan.dino_steps} loss {loss.item():.4f}")
    dino.eval().save_pretrained(out)
    models.write_preprocessing(out, models.DINO_PREPROCESSING)


def _train_judge(out: Path, mixed, seen, seed: int, plan: Plan, device: str) -> None:
    import torch
    from safetensors.torch import save_file

    from generation.world.judge import CONFIG, WEIGHTS, build_network, pixels_of

    torch.manual_seed(seed + 5)
    widths = (32, 64, 96, 128)
    network = build_network(widths).to(device).train()
    optimizer = torch.optim.AdamW(network.parameters(), lr=2e-3, weight_decay=0.01)
    schedule = _cosine(optimizer, plan.judge_steps, 50)
    for step in range(plan.judge_steps):
        rows = _batch_indices(len(mixed), plan.classifier_batch, seed + 5, step)
        pixels = torch.from_numpy(pixels_of(_pictures(mixed, seen, rows, np.random.default_rng([seed, step, 5]))))
        outputs = network(pixels.to(device))
        loss = sum(
            torch.nn.functional.cross_entropy(outputs[head], torch.from_numpy(mixed.labels[head][rows]).to(device))
            for head in outputs
        )
        loss.backward()
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        if step % 50 == 0 or step == plan.judge_steps - 1:
            log(f"judge step {step + 1}/{plan.judge_steps} loss {loss.item():.4f}")
    save_file({name: value.contiguous() for name, value in network.eval().state_dict().items()}, out / WEIGHTS)
    labels = {head: list(values) for head, values in world_data.LABELS.items()}
    (out / CONFIG).write_text(json.dumps({"widths": list(widths), "labels": labels}, indent=2) + "\n")


# -- subjects -------------------------------------------------------------------------------------


def _train_subject(out: Path, work: Path, pipeline: Path, subject: Subject, seed: int, plan: Plan, device: str) -> None:
    from generation.training import FineTuneSettings, fine_tune

    photos = work / "photos"
    if not (photos / subject.slug).is_dir():
        world_data.write_subject_photos(photos, seed=seed)
    settings = FineTuneSettings(
        method="lora",
        steps=plan.subject_steps,
        learning_rate=plan.subject_learning_rate,
        batch_size=plan.subject_batch,
        lora_rank=plan.subject_rank,
        lora_targets=plan.subject_targets,
        prior_preservation=plan.subject_prior_preservation,
        class_images=plan.subject_class_images,
        resolution=models.IMAGE_SIZE,
        checkpoint_every=100,
        seed=seed,
    )
    log(f"fine-tuning {subject.slug}: {settings.lora_targets} LoRA rank {settings.lora_rank}, {settings.steps} steps")
    fine_tune(
        pipeline,
        sorted((photos / subject.slug).glob("*.jpg")),
        f"a {CONCEPT_TOKEN} {subject.superclass}",
        f"a {subject.superclass}",
        settings,
        out,
        work_dir=work / "subjects" / subject.slug,
        device=device,
        on_progress=lambda progress: (
            progress.step % 100 == 0
            and log(f"{subject.slug} step {progress.step}/{progress.total} loss {progress.loss:.4f}")
        ),
    )


# -- manifest -------------------------------------------------------------------------------------


def _phase_seconds(directory: Path) -> dict[str, int | None]:
    """Each phase's training time, from its completion marker (None where a marker predates them)."""
    seconds = {}
    for marker in sorted(directory.rglob(".complete")):
        if "work" in marker.relative_to(directory).parts:
            continue
        try:
            seconds[marker.parent.relative_to(directory).as_posix()] = json.loads(marker.read_text())["seconds"]
        except (ValueError, KeyError, TypeError):
            seconds[marker.parent.relative_to(directory).as_posix()] = None
    return seconds


def _write_manifest(directory: Path, seed: int, plan: Plan, seconds: float) -> None:
    from generation.world.manifest import write_manifest

    write_manifest(
        directory,
        {
            "command": f"python -m generation world train DIR --seed {seed}",  # any DIR makes the same files
            "seed": seed,
            "plan": asdict(plan),
            "train_seconds": math.floor(seconds),
            "phase_seconds": _phase_seconds(directory),
        },
    )
