"""Captions from a small grammar, in the form of the paper's prompts."""

from __future__ import annotations

import re

import numpy as np

from generation.world.render import Thing
from generation.world.vocabulary import CONCEPT_TOKEN, SCENES, STUDIO

COLOUR_SHOWN = 0.6
PATTERN_SHOWN = 0.6
SCENE_SHOWN = 0.9
PHOTO_PREFIX = 0.2


def caption(thing: Thing, rng: np.random.Generator) -> str:
    """A caption of ``thing`` that names its shape and, by chance, its colour, pattern and scene.

    Unnamed attributes vary freely in the training pictures, so "a ball on the beach" (a superclass
    prompt) means a ball of any colour and pattern.
    """
    words = ["a photo of a" if rng.random() < PHOTO_PREFIX else "a"]
    if rng.random() < COLOUR_SHOWN:
        words.append(thing.colour)
    if thing.pattern != "plain" and rng.random() < PATTERN_SHOWN:
        words.append(thing.pattern)
    words.append(thing.shape)
    if thing.scene != STUDIO and rng.random() < SCENE_SHOWN:
        words.append(SCENES[thing.scene])
    return with_article(" ".join(words))


def with_article(text: str) -> str:
    """ "a orange ball" -> "an orange ball"."""
    return re.sub(r"\ba (?=[aeiou])", "an ", text)


def full_caption(thing: Thing) -> str:
    """Every attribute named, as an evaluation prompt would."""
    pattern = "" if thing.pattern == "plain" else f"{thing.pattern} "
    scene = "" if thing.scene == STUDIO else f" {SCENES[thing.scene]}"
    return with_article(f"a {thing.colour} {pattern}{thing.shape}{scene}")


def concept_prompt(template: str, superclass: str, token: str = CONCEPT_TOKEN) -> str:
    """``"a {concept} on the beach"`` -> "a sks ball on the beach"."""
    return with_article(template.format(concept=f"{token} {superclass}"))


def superclass_prompt(template: str, superclass: str) -> str:
    return with_article(template.format(concept=superclass))
