"""The one locally learnt BPE tokenizer of the tiny models."""

from __future__ import annotations

import pytest

from generation.tiny.tokenizer import PROMPT_WORDS, build_tokenizer

SUPERCLASSES = [
    "backpack",
    "bowl",
    "can",
    "candle",
    "cat",
    "clock",
    "sneaker",
    "dog",
    "toy",
    "boot",
    "glasses",
    "cartoon",
    "teapot",
    "vase",
]


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(PROMPT_WORDS)


def test_prompt_words_are_single_tokens(tokenizer):
    for word in [*SUPERCLASSES, "sks", "jungle", "cobblestone", "sunflowers", "windowsill", "monocle"]:
        assert len(tokenizer(word, add_special_tokens=False).input_ids) == 1, word
    assert len(tokenizer("stuffed animal", add_special_tokens=False).input_ids) == 2
    assert tokenizer.tokenize(" ".join(PROMPT_WORDS)) == [word + "</w>" for word in PROMPT_WORDS]


def test_unknown_words_still_tokenize_into_pieces(tokenizer):
    ids = tokenizer("zyzzyva", add_special_tokens=False).input_ids
    assert ids and tokenizer.unk_token_id not in ids


def test_any_words_become_single_tokens():
    words = ["Cube", "cubes", "sphere", "café", "aaaa", "abab", "ab", "ba"]
    fresh = build_tokenizer(words, max_length=16)
    assert fresh.model_max_length == 16
    assert fresh.tokenize("cube cubes sphere CAFÉ aaaa abab ab ba") == [
        "cube</w>",
        "cubes</w>",
        "sphere</w>",
        "cafÃ©</w>",
        "aaaa</w>",
        "abab</w>",
        "ab</w>",
        "ba</w>",
    ]
    assert len(fresh.tokenize("spheres")) > 1  # not a given word


@pytest.mark.parametrize("word", ["", "two words", "r2d2", "sks-dog", 7])
def test_words_that_cannot_be_one_token_are_refused(word):
    with pytest.raises(ValueError, match="tokenizer word: expected a non-empty run of letters"):
        build_tokenizer(["dog", word])
