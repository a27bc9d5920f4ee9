"""The texts CLIP-TS compares an image with, and the live/object split of concepts.

All ``{concept}`` templating is ``generation.prompts``'s.
"""

from __future__ import annotations

from generation.prompts import build_prompts, render, without_concept

LIVE_SUPERCLASSES = frozenset({"cat", "dog"})


def concept_prompt(template: str, concept_token: str, superclass: str) -> str:
    """The generation prompt: "a {concept} in the jungle" -> "a sks dog in the jungle"."""
    return build_prompts(template, concept_token, superclass).concept


def ts_prompts(template: str, superclass: str) -> dict[str, str]:
    """The text of each CLIP-TS variant, keyed by variant name.

    ``without_class``: the concept phrase removed with one adjacent space ("a in the jungle");
    ``with_class``: the superclass word in its place ("a dog in the jungle").
    """
    return {"without_class": without_concept(template), "with_class": render(template, superclass)}


def concept_category(superclass: str) -> str:
    """'live' for cats and dogs, 'object' for everything else (the paper's split)."""
    return "live" if superclass.strip().lower() in LIVE_SUPERCLASSES else "object"
