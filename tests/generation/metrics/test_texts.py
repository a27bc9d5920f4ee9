"""The CLIP-TS texts and the live/object split."""

from __future__ import annotations

import re

import pytest

from generation.errors import PromptError
from generation.metrics import texts


@pytest.mark.parametrize(
    ("template", "without_class", "with_class"),
    [
        ("a {concept} in the jungle", "a in the jungle", "a dog in the jungle"),
        ("a red {concept}", "a red", "a red dog"),
        ("{concept} sitting on a windowsill", "sitting on a windowsill", "dog sitting on a windowsill"),
    ],
)
def test_ts_prompt_variants(template, without_class, with_class):
    assert texts.ts_prompts(template, "dog") == {"without_class": without_class, "with_class": with_class}


def test_concept_prompt_uses_token_and_superclass():
    assert (
        texts.concept_prompt("a {concept} in the snow", "sks", "stuffed animal") == "a sks stuffed animal in the snow"
    )


@pytest.mark.parametrize("template", ["a dog in the snow", "a {concept} and a {concept}", "a {0} in the snow"])
def test_template_needs_exactly_one_placeholder(template):
    with pytest.raises(PromptError, match=re.escape("expected exactly one {concept}")):
        texts.ts_prompts(template, "dog")


def test_live_object_split_by_superclass():
    assert [texts.concept_category(word) for word in ("dog", "cat", "stuffed animal", "toy")] == [
        "live",
        "live",
        "object",
        "object",
    ]
