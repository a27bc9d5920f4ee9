"""Builders for the results tests: a published study with answers written straight to the database."""

import random

from django.utils import timezone

from studyapp.models import Answer, Pair, Rater, Study
from tests.rating.factories import check_pair, published_study

TEMPLATES = ("a {concept} in the snow", "a {concept} on the beach", "a {concept} in a city", "a {concept} at night")


def add_answers(
    study: Study,
    raters: int = 6,
    a_wins: float = 0.7,
    tie: float = 0.1,
    seed: int = 0,
    name_prefix: str = "r",
    response_ms: int = 4000,
) -> list[Rater]:
    """Each new rater answers every regular pair: A wins with probability ``a_wins``, ties with ``tie``."""
    rng = random.Random(seed)
    pairs = list(study.pairs.filter(kind=Pair.Kind.REGULAR).order_by("id"))
    made = Rater.objects.bulk_create(
        Rater(study=study, source=Rater.Source.OPEN, external_id=f"{name_prefix}{i}", consented=timezone.now())
        for i in range(raters)
    )
    answers = []
    for rater in made:
        for pair in pairs:
            answers.append(answer(rater, pair, _draw(rng, a_wins, tie), rng.random() < 0.5, response_ms))
    Answer.objects.bulk_create(answers)
    return made


def _draw(rng: random.Random, a_wins: float, tie: float) -> str:
    x = rng.random()
    return "tie" if x < tie else ("a" if x < tie + a_wins * (1 - tie) else "b")


def answer(
    rater: Rater, pair: Pair, choice: str, left_is_a: bool = True, response_ms: int | None = 4000, **per_question
) -> Answer:
    """An unsaved answer; ``choice`` for every question unless given per question."""
    choices = {q: per_question.get(q, choice) for q in ("text", "image", "overall")}
    screen = {q: _screen(c, left_is_a) for q, c in choices.items()}
    return Answer(
        rater=rater, pair=pair, left_is_a=left_is_a, screen_answers=screen, response_ms=response_ms, **choices
    )


def _screen(choice: str, left_is_a: bool) -> str:
    if choice == "tie":
        return "0"
    return "1" if (choice == "a") == left_is_a else "2"


def study_with_answers(methods: int = 3, raters: int = 6, **fields) -> Study:
    """A published study (method 1..n-1 against method 0, 4 prompts x 2 seeds) with answers.

    It has one concept, so unless told otherwise it declares the subject fixed (that concept is the
    population its claims are about); with the subject random, no cell could be tested."""
    fields.setdefault("fixed_factors", ["subject"])
    study = published_study(seeds=2, methods=methods, templates=TEMPLATES, **fields)
    add_answers(study, raters=raters)
    return study


def gold_pair(study: Study, expected: dict) -> Pair:
    return check_pair(study, Pair.Kind.GOLD, expected)
