"""Oracle raters: what the prompt asks for, how a rater's noise, bias and care shape its answers."""

import numpy as np

from generation.world.data import LABELS
from generation.world.oracle import OracleRater, image_scores, prompted_attributes, reference_subject


def _one_hot(**chosen) -> dict:
    probabilities = {}
    for head, values in LABELS.items():
        row = np.full(len(values), 0.0)
        row[values.index(chosen.get(head, values[0]))] = 1.0
        probabilities[head] = row
    return probabilities


def test_prompted_attributes_read_the_worlds_prompts():
    assert prompted_attributes("a ball on the beach") == {"shape": "ball", "scene": "beach"}
    assert prompted_attributes("a red striped box on a red carpet") == {
        "shape": "box",
        "colour": "red",
        "pattern": "striped",
        "scene": "carpet",
    }
    assert prompted_attributes("a dog in the snow") == {"scene": "snow"}


def test_image_scores_follow_the_judge():
    right = _one_hot(shape="ball", scene="beach", subject="sunny_ball")
    wrong = _one_hot(shape="star", scene="snow", subject="none")
    good = image_scores(right, "a ball on the beach", "sunny_ball")
    bad = image_scores(wrong, "a ball on the beach", "sunny_ball")
    assert good == {"text": 1.0, "subject": 1.0, "overall": 1.0}
    assert bad == {"text": 0.0, "subject": 0.0, "overall": 0.0}


def test_the_reference_subject_is_the_judges_majority():
    photos = {
        head: np.stack([_one_hot(subject=s)[head] for s in ("sunny_ball", "sunny_ball", "none")]) for head in LABELS
    }
    assert reference_subject(photos) == "sunny_ball"


def test_a_careful_rater_prefers_the_better_image_and_ties_equal_ones():
    rater = OracleRater(noise=0.01, left_bias=0.0, tie_margin=0.05, careless=False)
    rng = np.random.default_rng(0)
    better, worse = {"text": 0.9, "subject": 0.2, "overall": 0.55}, {"text": 0.1, "subject": 0.8, "overall": 0.45}
    assert rater.answer(better, worse, rng) == {"text": "1", "subject": "2", "overall": "1"}
    assert rater.answer(worse, better, rng) == {"text": "2", "subject": "1", "overall": "2"}
    assert rater.answer(better, better, rng) == {"text": "0", "subject": "0", "overall": "0"}


def test_left_bias_and_carelessness_show_in_many_answers():
    rng = np.random.default_rng(1)
    same = {"text": 0.5, "subject": 0.5, "overall": 0.5}
    biased = OracleRater(noise=0.1, left_bias=0.1, tie_margin=0.0, careless=False)
    lefts = np.mean([biased.answer(same, same, rng)["text"] == "1" for _ in range(2000)])
    assert 0.78 < lefts < 0.9  # P(N(0.1, 0.1) > 0) = 0.84
    careless = OracleRater(noise=0.0, left_bias=0.0, tie_margin=0.0, careless=True)
    better, worse = {"text": 1.0, "subject": 1.0, "overall": 1.0}, {"text": 0.0, "subject": 0.0, "overall": 0.0}
    picks = [careless.answer(better, worse, rng)["text"] for _ in range(2000)]
    assert 0.35 < picks.count("1") / 2000 < 0.45 and 0.15 < picks.count("0") / 2000 < 0.25


def test_drawn_raters_vary_and_a_share_is_careless():
    rng = np.random.default_rng(2)
    raters = [OracleRater.draw(rng, careless_share=0.25) for _ in range(400)]
    assert 0.18 < np.mean([r.careless for r in raters]) < 0.32
    assert len({round(r.noise, 3) for r in raters}) > 100
