"""Simulated raters for the demo: they go through the same assignment engine as people do.

Each prefers method A of every comparison with a fixed probability and answers gold and attention
checks correctly, so the results page of a demo study has numbers to show. Their ids start with
'simulated-', so they are easy to find and exclude.
"""

import random

from studyapp.models import QUESTIONS, Rater, Study
from studyapp.rating.answers import submit_answer
from studyapp.rating.assignment import claim_leases

SIMULATED_PREFIX = "simulated-"


def simulate_raters(study: Study, count: int, seed: int = 0, prefer_a: float = 0.6, tie_rate: float = 0.2) -> int:
    """Let `count` simulated raters finish their quota; returns how many answers they stored."""
    rng = random.Random(seed)
    stored = 0
    for number in range(count):
        rater, _ = Rater.objects.get_or_create(
            study=study, source=Rater.Source.OPEN, external_id=f"{SIMULATED_PREFIX}{number + 1}"
        )
        stored += _rate_until_done(rater, rng, prefer_a, tie_rate)
    return stored


def _rate_until_done(rater: Rater, rng: random.Random, prefer_a: float, tie_rate: float) -> int:
    stored = 0
    while True:
        leases = claim_leases(rater)
        if leases.current is None:
            return stored
        assignment = leases.current
        values = {q: _screen_answer(assignment, q, rng, prefer_a, tie_rate) for q in QUESTIONS}
        result = submit_answer(rater, assignment.token, values, response_ms=rng.randint(2500, 9000))
        stored += not result.duplicate
        if result.completed or result.screened_out:
            return stored


def _screen_answer(assignment, question: str, rng: random.Random, prefer_a: float, tie_rate: float) -> str:
    expected = assignment.pair.expected.get(question)
    if expected:
        winner = expected
    elif rng.random() < tie_rate:
        return "0"
    else:
        winner = "a" if rng.random() < prefer_a else "b"
    return "1" if (winner == "a") == assignment.left_is_a else "2"
