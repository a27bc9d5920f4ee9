"""Seeds for paired comparisons: one seed per (prompt template, seed index).

The seed depends only on the raw template and the index, so every sampler, every concept and every
batch size starts from the same noise for the same (template, index). A hash is used rather than the
reference code's sum of character codes, which collides for anagrams of a template.
"""

from __future__ import annotations

import hashlib

from generation.errors import ParameterError

_MAX_SEED = 2**63 - 1


def seed_for(prompt_template: str, seed_index: int) -> int:
    """Return a stable non-negative seed below 2**63 for this template and index."""
    if not isinstance(prompt_template, str):
        raise ParameterError(f"prompt_template: expected a string, got {type(prompt_template).__name__}")
    if isinstance(seed_index, bool) or not isinstance(seed_index, int) or seed_index < 0:
        raise ParameterError(f"seed_index: expected an integer >= 0, got {seed_index!r}")
    digest = hashlib.sha256(f"{prompt_template}\x00{seed_index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & _MAX_SEED


def parse_seed_indices(text: str) -> list[int]:
    """Parse "0-9", "3", "0,2,5-7" into a sorted list of distinct indices."""
    indices: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        low, _, high = part.partition("-")
        try:
            start = int(low)
            stop = int(high) if high else start
        except ValueError:
            raise ParameterError(f"seeds: expected ranges like 0-9 or 0,3,5, got {text!r}") from None
        if start < 0 or stop < start:
            raise ParameterError(f"seeds: expected 0 <= start <= stop in {part!r}, got {text!r}")
        indices.update(range(start, stop + 1))
    if not indices:
        raise ParameterError(f"seeds: expected at least one index, got {text!r}")
    return sorted(indices)
