"""Oracle raters: simulated people who answer the three questions from the judge's view of the images.

A rater scores each image per question from the judge's probabilities:

* text: the mean probability of each attribute the prompt names (shape, scene, colour, pattern);
* subject: the probability that the image shows the reference photos' subject (the subject the judge
  finds in most reference photos) - or, for a superclass-only world, its shape;
* overall: the mean of the two.

It prefers the image with the higher score after adding its own noise and a position bias towards the
left image, and answers "Can't decide" when the difference is within its tie margin. A share of raters
are careless and answer at random.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from generation.world.data import LABELS
from generation.world.vocabulary import COLOURS, PATTERNS, SCENES, SHAPES

QUESTIONS = ("text", "subject", "overall")


def prompted_attributes(prompt: str) -> dict[str, str]:
    """The labels a world prompt asks for: {"shape": "ball", "scene": "beach", ...}."""
    words = prompt.lower().split()
    wanted = {}
    for head, values in (("shape", SHAPES), ("colour", tuple(COLOURS)), ("pattern", PATTERNS[1:])):
        found = [value for value in values if value in words]
        if found:
            wanted[head] = found[-1]
    padded = f" {' '.join(words)} "
    for scene, phrase in SCENES.items():
        if f" {phrase} " in padded:
            wanted["scene"] = scene
    return wanted


def text_score(probabilities: dict[str, np.ndarray], wanted: dict[str, str]) -> float:
    """Mean judge probability of the prompted labels for one image (``probabilities``: head -> (labels,))."""
    if not wanted:
        return 0.0
    return float(np.mean([probabilities[head][LABELS[head].index(label)] for head, label in wanted.items()]))


def reference_subject(reference_probabilities: dict[str, np.ndarray]) -> str:
    """The subject the judge sees in most reference photos ("none" when it sees none)."""
    votes = reference_probabilities["subject"].argmax(axis=1)
    return LABELS["subject"][int(np.bincount(votes, minlength=len(LABELS["subject"])).argmax())]


def subject_score(probabilities: dict[str, np.ndarray], subject: str) -> float:
    return float(probabilities["subject"][LABELS["subject"].index(subject)])


def image_scores(probabilities: dict[str, np.ndarray], prompt: str, subject: str) -> dict[str, float]:
    text = text_score(probabilities, prompted_attributes(prompt))
    fidelity = subject_score(probabilities, subject)
    return {"text": text, "subject": fidelity, "overall": (text + fidelity) / 2}


@dataclass(frozen=True)
class OracleRater:
    """One simulated person: how noisy, how biased towards the left image, how ready to say "Can't decide"."""

    noise: float
    left_bias: float
    tie_margin: float
    careless: bool

    @classmethod
    def draw(cls, rng: np.random.Generator, careless_share: float = 0.1) -> OracleRater:
        return cls(
            noise=float(rng.uniform(0.05, 0.25)),
            left_bias=float(rng.normal(0.03, 0.03)),
            tie_margin=float(rng.uniform(0.02, 0.08)),
            careless=bool(rng.random() < careless_share),
        )

    def answer(self, left: dict[str, float], right: dict[str, float], rng: np.random.Generator) -> dict[str, str]:
        """ "1" (left), "2" (right) or "0" (Can't decide) for each question."""
        if self.careless:
            return {question: str(rng.choice(["1", "2", "0"], p=[0.4, 0.4, 0.2])) for question in QUESTIONS}
        answers = {}
        for question in QUESTIONS:
            difference = left[question] - right[question] + self.left_bias + rng.normal(0, self.noise)
            answers[question] = "0" if abs(difference) < self.tie_margin else ("1" if difference > 0 else "2")
        return answers
