"""Simulated raters: they go through the same assignment engine as people do.

* ``simulate_raters``: each prefers method A of every comparison with a fixed probability;
* ``simulate_oracle_raters``: each looks at the two images through the world's judge
  (``generation.world.oracle``) with its own noise, a left-image bias and, for a share of them,
  no care at all - realistic answers for studies on the world's models.

Both answer gold and attention checks as a careful person would (careless oracle raters excepted).
Their ids start with 'simulated-' or 'oracle-', so they are easy to find and exclude.
"""

import random
from collections.abc import Callable

from studyapp.models import QUESTIONS, Rater, Study
from studyapp.rating.answers import submit_answer
from studyapp.rating.assignment import claim_leases

SIMULATED_PREFIX = "simulated-"
ORACLE_PREFIX = "oracle-"


def simulate_raters(study: Study, count: int, seed: int = 0, prefer_a: float = 0.6, tie_rate: float = 0.2) -> int:
    """Let `count` simulated raters finish their quota; returns how many answers they stored."""
    rng = random.Random(seed)

    def answers(assignment) -> dict[str, str]:
        return {q: _screen_answer(assignment, q, rng, prefer_a, tie_rate) for q in QUESTIONS}

    return sum(_rate_until_done(_rater(study, SIMULATED_PREFIX, number), answers, rng) for number in range(count))


def simulate_oracle_raters(study: Study, count: int, seed: int = 0, careless_share: float = 0.1, judge=None) -> int:
    """Let `count` oracle raters finish their quota; returns how many answers they stored."""
    import numpy as np

    from generation.world.oracle import OracleRater
    from studyapp.rating.oracle_view import JudgeView

    view = JudgeView(judge)
    rng = random.Random(seed)
    stored = 0
    for number in range(count):
        person_rng = np.random.default_rng([seed, number])
        person = OracleRater.draw(person_rng, careless_share)

        def answers(assignment, person=person, person_rng=person_rng) -> dict[str, str]:
            if assignment.pair.expected and not person.careless:
                return {q: _expected_answer(assignment, q) for q in QUESTIONS}
            image_a, image_b = view.scores(assignment.pair)
            left, right = (image_a, image_b) if assignment.left_is_a else (image_b, image_a)
            answers = person.answer(left, right, person_rng)
            # the oracle's "subject" is the study's image question: which shows the subject
            return {"text": answers["text"], "image": answers["subject"], "overall": answers["overall"]}

        stored += _rate_until_done(_rater(study, ORACLE_PREFIX, number), answers, rng)
    return stored


def _rater(study: Study, prefix: str, number: int) -> Rater:
    rater, _ = Rater.objects.get_or_create(study=study, source=Rater.Source.OPEN, external_id=f"{prefix}{number + 1}")
    return rater


def _rate_until_done(rater: Rater, answers: Callable, rng: random.Random) -> int:
    stored = 0
    while True:
        leases = claim_leases(rater)
        if leases.current is None:
            return stored
        assignment = leases.current
        result = submit_answer(rater, assignment.token, answers(assignment), response_ms=rng.randint(2500, 9000))
        stored += not result.duplicate
        if result.completed or result.screened_out:
            return stored


def _expected_answer(assignment, question: str) -> str:
    expected = assignment.pair.expected.get(question)
    if not expected:
        return "0"
    return "1" if (expected == "a") == assignment.left_is_a else "2"


def _screen_answer(assignment, question: str, rng: random.Random, prefer_a: float, tie_rate: float) -> str:
    expected = assignment.pair.expected.get(question)
    if expected:
        winner = expected
    elif rng.random() < tie_rate:
        return "0"
    else:
        winner = "a" if rng.random() < prefer_a else "b"
    return "1" if (winner == "a") == assignment.left_is_a else "2"
