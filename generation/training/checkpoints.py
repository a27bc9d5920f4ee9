"""Checkpoints in the work folder: ``checkpoint-<step>/`` written whole or not at all, the newest kept.

A checkpoint holds the trainable tensors (``trainable.safetensors``), the optimizer's state, the
learning-rate schedule's and loss scaler's state, the RNG states, and ``checkpoint.json`` with the
step, the wall time so far and the run's fingerprint (base model, settings, prompts, photo hashes), so
a work folder is never resumed by a different run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from generation.errors import FineTuneError

_NAME = re.compile(r"^checkpoint-(\d+)$")
MARKER = "checkpoint.json"


def write_errors() -> tuple[type[BaseException], ...]:
    """What a failed write raises: OSError (disk full, permissions) and safetensors' own error."""
    from safetensors import SafetensorError

    return (OSError, SafetensorError)


@dataclass
class Checkpoint:
    path: Path
    step: int
    wall_seconds: float
    fingerprint: dict


def clear_staging(work_dir: Path) -> None:
    """Remove half-written checkpoints a killed process left behind."""
    for entry in work_dir.glob(".checkpoint-*"):
        shutil.rmtree(entry, ignore_errors=True)


def latest(work_dir: Path) -> Checkpoint | None:
    """The newest complete checkpoint in ``work_dir``, or None."""
    found = []
    for entry in work_dir.iterdir() if work_dir.is_dir() else ():
        match = _NAME.match(entry.name)
        if match and (entry / MARKER).is_file():
            found.append((int(match.group(1)), entry))
    if not found:
        return None
    step, path = max(found)
    try:
        meta = json.loads((path / MARKER).read_text())
    except (OSError, ValueError) as exc:
        raise FineTuneError(f"checkpoint {path}: could not read {MARKER}: {exc}") from exc
    return Checkpoint(path, step, float(meta.get("wall_seconds", 0.0)), meta.get("fingerprint", {}))


def check_fingerprint(checkpoint: Checkpoint, fingerprint: dict) -> None:
    """Refuse to resume a checkpoint written by a run with other inputs."""
    differing = sorted(
        key
        for key in set(fingerprint) | set(checkpoint.fingerprint)
        if fingerprint.get(key) != checkpoint.fingerprint.get(key)
    )
    if differing:
        raise FineTuneError(
            f"work_dir {checkpoint.path.parent}: holds a checkpoint of another run (different {', '.join(differing)}); "
            "expected the same base model, photos, prompts and settings, or an empty work folder"
        )


def save(work_dir: Path, step: int, tensors: dict, optimizer, extra_state: dict, meta: dict) -> Path:
    """Write ``checkpoint-<step>`` atomically (staging folder, then rename), then drop the older ones."""
    import torch
    from safetensors.torch import save_file

    final = work_dir / f"checkpoint-{step}"
    staging = None
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".checkpoint-{step}-", dir=work_dir))
        save_file(
            {name: tensor.detach().cpu().contiguous() for name, tensor in tensors.items()},
            str(staging / "trainable.safetensors"),
        )
        torch.save(optimizer.state_dict(), staging / "optimizer.pt")
        torch.save(extra_state, staging / "state.pt")
        (staging / MARKER).write_text(json.dumps({"step": step, **meta}, indent=2, sort_keys=True))
        if final.exists():
            shutil.rmtree(final)
        os.rename(staging, final)
    except write_errors() as exc:
        raise FineTuneError(f"checkpoint {final}: could not write it: {exc}") from exc
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    for entry in work_dir.iterdir():
        match = _NAME.match(entry.name)
        if match and int(match.group(1)) != step:
            shutil.rmtree(entry, ignore_errors=True)
    return final


def load(checkpoint: Checkpoint) -> tuple[dict, dict, dict]:
    """(trainable tensors, optimizer state, extra state) of a checkpoint, on the CPU: the optimizer's
    ``load_state_dict`` moves its state next to each parameter (and keeps Adam's step counts where
    its kernels expect them)."""
    import torch
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(checkpoint.path / "trainable.safetensors"))
        optimizer_state = torch.load(checkpoint.path / "optimizer.pt", map_location="cpu", weights_only=True)
        extra = torch.load(checkpoint.path / "state.pt", map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file; resuming from it would be wrong
        raise FineTuneError(f"checkpoint {checkpoint.path}: could not read it: {exc}") from exc
    return tensors, optimizer_state, extra
