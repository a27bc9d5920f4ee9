"""Build a model folder once, safely when several processes try at the same time."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def build_once(target: Path, write: Callable[[Path], None], is_complete: Callable[[Path], bool], last: str) -> Path:
    """Run ``write`` into a private folder next to ``target`` and move the result into place; return ``target``.

    Nothing is built if ``target`` is already complete. A process that loses the race discards its copy.
    If ``target`` already holds other things (the tiny CLIP and DINO beside the pipeline), the entries
    are moved in one by one, ``last`` (the file that marks the folder complete) at the end.
    """
    if is_complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        write(staging)
        staging.chmod(0o755)  # mkdtemp makes it owner-only; the web server may run as another user
        if not target.exists() or not any(target.iterdir()):
            _rename_quietly(staging, target)
        else:
            for entry in sorted(staging.iterdir(), key=lambda path: path.name == last):
                if not (target / entry.name).exists():
                    _rename_quietly(entry, target / entry.name)
        if not is_complete(target):
            raise OSError(f"tiny model {target}: expected a complete model after building, found an incomplete folder")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _rename_quietly(source: Path, destination: Path) -> None:
    """Rename; losing a race to another process that created ``destination`` is not an error."""
    try:
        os.rename(source, destination)
    except OSError:
        if not destination.exists():
            raise
