"""A byte-level BPE CLIPTokenizer built here, in which each given word is one token.

The hub's tiny test tokenizers cannot be downloaded, so the tiny models build theirs: the 256 byte
symbols of GPT-2 / CLIP byte-level BPE (with and without the end-of-word mark), then, word by word
in the order given, the merges that join the word's remaining pieces left to right. Each merge ranks
after all earlier ones, so a later word never splits an earlier one. Any other text still tokenizes,
into smaller pieces, never into the unknown token.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from pathlib import Path

BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"
WORD_END = "</w>"
MAX_TOKENS = 77

# Words of the DreamBooth, base and complex prompt sets and the superclasses, plus the concept token.
PROMPT_WORDS = [
    word
    for line in (Path(__file__).parent / "prompt_words.txt").read_text().splitlines()
    if not line.startswith("#")
    for word in line.split()
]


def build_tokenizer(words: Iterable[str], max_length: int = MAX_TOKENS):
    """A CLIPTokenizer in which each of ``words`` (letters only; matched case-insensitively) is one token."""
    from transformers import CLIPTokenizer  # heavy import, only when a tokenizer is built

    vocab, merges = learn_bpe(words)
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=max_length)


def learn_bpe(words: Iterable[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Merges that make every word one symbol; return (vocab, merges) in CLIP's format."""
    table = _bytes_to_unicode()
    alphabet = list(table.values())
    vocab_tokens = alphabet + [symbol + WORD_END for symbol in alphabet]
    ranks: dict[tuple[str, str], int] = {}
    for word in dict.fromkeys(_checked(word) for word in words):
        pieces = _apply_merges(_word_symbols(word, table), ranks)
        while len(pieces) > 1:
            pair = (pieces[0], pieces[1])
            if pair not in ranks:
                ranks[pair] = len(ranks)
                vocab_tokens.append(pair[0] + pair[1])
            pieces = [pair[0] + pair[1], *pieces[2:]]
    vocab_tokens += [BOS_TOKEN, EOS_TOKEN]
    return {token: index for index, token in enumerate(dict.fromkeys(vocab_tokens))}, list(ranks)


def _checked(word: str) -> str:
    # CLIP's pre-tokenizer lowercases and splits digits and punctuation off letters, so only a run of
    # letters can come out as one token.
    if not isinstance(word, str) or not word.isalpha():
        raise ValueError(f"tokenizer word: expected a non-empty run of letters, got {word!r}")
    return word.lower()


def _word_symbols(word: str, table: dict[int, str]) -> list[str]:
    symbols = [table[byte] for byte in word.encode("utf-8")]
    symbols[-1] += WORD_END
    return symbols


def _apply_merges(pieces: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """What CLIP's bpe() does with the merges so far: join the lowest-ranked pair, everywhere, until none is left."""
    while len(pieces) > 1:
        known = [pair for pair in itertools.pairwise(pieces) if pair in ranks]
        if not known:
            break
        best = min(known, key=ranks.__getitem__)
        merged, index = [], 0
        while index < len(pieces):
            if index + 1 < len(pieces) and (pieces[index], pieces[index + 1]) == best:
                merged.append(pieces[index] + pieces[index + 1])
                index += 2
            else:
                merged.append(pieces[index])
                index += 1
        pieces = merged
    return pieces


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / CLIP byte-to-printable-character table."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {byte: chr(byte) for byte in printable}
    extra = 0
    for byte in range(256):
        if byte not in table:
            table[byte] = chr(256 + extra)
            extra += 1
    return table


T5_MAX_TOKENS = 120  # PixArt-alpha's caption length
WORD_START = "\u2581"  # SentencePiece's word-start mark


def build_t5_tokenizer(words: Iterable[str], max_length: int = T5_MAX_TOKENS):
    """A T5Tokenizer (SentencePiece Unigram) in which each of ``words`` is one token, PixArt-alpha style.

    Each word is one piece with a high score; single characters (with and without the word-start mark)
    score low, so other text still tokenizes, into characters, never into the unknown token. As in T5,
    there is no start token and ``</s>`` ends every prompt.
    """
    from transformers import T5Tokenizer  # heavy import, only when a tokenizer is built

    characters = [chr(code) for code in range(ord("!"), ord("~") + 1)]
    pieces = [(f"{WORD_START}{word}", -1.0) for word in dict.fromkeys(_checked(word) for word in words)]
    pieces += [(f"{WORD_START}{char}", -6.0) for char in characters] + [(char, -5.0) for char in characters]
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), (WORD_START, -2.0), *dict(pieces).items()]
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=max_length)
