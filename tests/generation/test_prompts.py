from __future__ import annotations

import re

import pytest

from generation.errors import PromptError
from generation.prompts import build_prompts, phrase_span, render, without_concept


def test_render_fills_the_placeholder():
    assert render("a {concept} in the snow", "sks dog") == "a sks dog in the snow"
    assert render("{concept} wearing {a} hat", "dog") == "dog wearing {a} hat"


@pytest.mark.parametrize("template", ["a {0} in the snow", "a dog", "{concept} and {concept}"])
def test_templates_need_exactly_one_placeholder(template):
    with pytest.raises(PromptError, match=re.escape("expected exactly one {concept} placeholder")):
        render(template, "dog")


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("a {concept} in the jungle", "a in the jungle"),
        ("a red {concept}", "a red"),
        ("{concept} on a rug", "on a rug"),
    ],
)
def test_without_concept_removes_the_placeholder_and_one_space(template, expected):
    assert without_concept(template) == expected


def test_build_prompts_makes_concept_and_superclass_prompts():
    prompts = build_prompts("a {concept} on the beach", "sks", "stuffed animal")
    assert prompts.concept == "a sks stuffed animal on the beach"
    assert prompts.superclass == "a stuffed animal on the beach"
    assert prompts.uncond == ""


def test_empty_token_is_rejected():
    with pytest.raises(PromptError, match="non-empty token"):
        build_prompts("a {concept}", " ", "dog")


@pytest.fixture(scope="module")
def tokenizer():
    from generation.tiny.tokenizer import PROMPT_WORDS, build_tokenizer

    return build_tokenizer(PROMPT_WORDS)


def test_phrase_span_counts_the_start_token(tokenizer):
    assert phrase_span(tokenizer, "a {concept} in the snow", "sks dog") == (2, 4)
    assert phrase_span(tokenizer, "{concept} in a chef outfit", "dog") == (1, 2)


def test_phrase_span_of_a_multi_token_superclass(tokenizer):
    assert phrase_span(tokenizer, "a red {concept}", "stuffed animal") == (3, 5)


def test_phrase_span_of_an_added_placeholder_token():
    from generation.tiny.tokenizer import PROMPT_WORDS, build_tokenizer

    fresh = build_tokenizer(PROMPT_WORDS)  # not the shared fixture: adding a token changes it
    fresh.add_tokens(["<dog>"])
    assert phrase_span(fresh, "a photo of a {concept}", "<dog> dog") == (5, 7)


def test_phrase_glued_to_letters_is_rejected(tokenizer):
    with pytest.raises(PromptError, match="keep its own tokens"):
        phrase_span(tokenizer, "a {concept}s in the snow", "sks dog")
