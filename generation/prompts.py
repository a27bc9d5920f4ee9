"""Prompt templates: "a {concept} in the snow" filled with the concept phrase or the superclass word."""

from __future__ import annotations

from dataclasses import dataclass

from generation.errors import PromptError

PLACEHOLDER = "{concept}"


def check_template(template: str) -> str:
    """Return the template if it holds exactly one ``{concept}``; raise PromptError otherwise."""
    if not isinstance(template, str):
        raise PromptError(f"prompt template: expected a string, got {type(template).__name__}")
    count = template.count(PLACEHOLDER)
    if count != 1:
        raise PromptError(
            f"prompt template {template!r}: expected exactly one {PLACEHOLDER} placeholder, found {count}"
        )
    return template


def render(template: str, concept_phrase: str) -> str:
    """Fill the template's ``{concept}`` with a phrase ("sks dog" or "dog")."""
    check_template(template)
    return template.replace(PLACEHOLDER, concept_phrase)


def without_concept(template: str) -> str:
    """The template with ``{concept}`` and one adjacent space removed: "a {concept} in the snow" -> "a in the snow"."""
    check_template(template)
    before, _, after = template.partition(PLACEHOLDER)
    if after.startswith(" "):
        after = after[1:]
    elif before.endswith(" "):
        before = before[:-1]
    return before + after


def concept_phrase(concept_token: str, superclass: str) -> str:
    """The subject phrase of the concept prompt, e.g. "sks dog"."""
    if not concept_token.strip() or not superclass.strip():
        raise PromptError(
            f"concept: expected a non-empty token and superclass, got {concept_token!r} and {superclass!r}"
        )
    return f"{concept_token.strip()} {superclass.strip()}"


@dataclass(frozen=True)
class PromptSet:
    """The three prompts every sampler draws from: concept, superclass and unconditional."""

    template: str
    concept_phrase: str
    superclass_phrase: str
    concept: str
    superclass: str
    uncond: str = ""


def build_prompts(template: str, concept_token: str, superclass: str) -> PromptSet:
    phrase = concept_phrase(concept_token, superclass)
    return PromptSet(
        template=template,
        concept_phrase=phrase,
        superclass_phrase=superclass.strip(),
        concept=render(template, phrase),
        superclass=render(template, superclass.strip()),
    )


def _token_ids(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False).input_ids)


def phrase_span(tokenizer, template: str, phrase: str) -> tuple[int, int]:
    """Token positions [start, stop) of ``phrase`` in the rendered template, counting any start token.

    Works for any placeholder the tokenizer knows (``sks``, an added ``<dog>``) and for multi-token
    words ("stuffed animal"). Raises PromptError if the phrase does not tokenize the same on its own
    as inside the prompt (e.g. "{concept}s" glues a letter onto the word).
    """
    prefix = template.split(PLACEHOLDER, 1)[0]
    full = _token_ids(tokenizer, render(template, phrase))
    before = _token_ids(tokenizer, prefix) if prefix.strip() else []
    own = _token_ids(tokenizer, phrase)
    if full[len(before) : len(before) + len(own)] != own:
        raise PromptError(
            f"prompt template {template!r}: expected {phrase!r} to keep its own tokens inside the prompt; "
            "separate {concept} from neighbouring letters with spaces"
        )
    start = len(before) + special_tokens(tokenizer)[0]
    return start, start + len(own)


def special_tokens(tokenizer) -> tuple[int, int]:
    """How many special tokens the tokenizer puts before a text, and how many in all.

    CLIP adds a start and an end token (1, 2); T5, PixArt-alpha's encoder, only an end token (0, 1).
    """
    probe = "a"
    bare = _token_ids(tokenizer, probe)
    full = list(tokenizer(probe).input_ids)
    leading = next((i for i in range(len(full)) if full[i : i + len(bare)] == bare), 0)
    return leading, len(full) - len(bare)


def token_count(tokenizer, text: str) -> int:
    """Number of tokens including the special ones (compare with tokenizer.model_max_length)."""
    return len(_token_ids(tokenizer, text)) + special_tokens(tokenizer)[1]
