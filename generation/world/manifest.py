"""The world models' manifest: what made them and a hash per file, checked on load."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

MANIFEST = "manifest.json"
SKIPPED_FOLDERS = ("work",)


def file_hashes(directory: Path) -> dict[str, str]:
    hashes = {}
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if path.is_file() and relative.parts[0] not in SKIPPED_FOLDERS and path.name not in (MANIFEST, ".complete"):
            hashes[relative.as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


def write_manifest(directory: Path, provenance: dict) -> Path:
    files = file_hashes(directory)
    total = sum((directory / name).stat().st_size for name in files)
    manifest = {**provenance, "total_bytes": total, "files": files}
    path = directory / MANIFEST
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path


def changed_files(directory: Path) -> list[str]:
    """Files whose hash differs from the manifest's, or that are missing or unlisted."""
    recorded = json.loads((directory / MANIFEST).read_text())["files"]
    present = file_hashes(directory)
    return sorted(name for name in set(recorded) | set(present) if recorded.get(name) != present.get(name))
