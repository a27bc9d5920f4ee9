"""Gold and attention pairs: how they are built from the study's own images, and how they are scored.

What a check pair tests lives in ``Pair.expected``: ``{"text": "a"}`` means image A is the right answer
to the text question; only the questions named there are scored. docs/study-setup.md describes the rules.
"""

import math
import random
import re
from dataclasses import dataclass

from studyapp.models import QUESTIONS, Concept, GeneratedImage, Pair, Study
from studyapp.studies.check_images import corrupted_copy, grey_copy
from studyapp.studies.pairs import latest_images

# Prolific: a participant must fail two attention checks before being asked to return.
DEFAULT_ATTENTION_FAILURES_ALLOWED = 1
_FILLER_WORDS = {"a", "an", "the", "of", "in", "on", "with"}
_SHORT_BECAUSE = {
    "text": "needs images of one concept and seed for two different prompts",
    "image": "needs a second concept with images for the same prompt and seed",
    "overall": "needs regular pairs",
}


def checks_per_rater(rate: float, quota: int) -> int:
    """The one rounding rule for check counts: rate x quota to the nearest whole number, halves up.

    Python's round() sends halves to the even number (round(0.5) == 0), which once made a study promise
    one check in ten pairs and give none; the tolerance absorbs float error such as 0.15 * 10 = 1.4999....
    """
    return math.floor(rate * quota + 0.5 + 1e-9)


def rater_check_counts(study: Study) -> tuple[int, int]:
    """(gold, attention) slots in each rater's quota; the first slot is always regular, so they fit in the rest."""
    room = max(study.pairs_per_rater - 1, 0)
    gold = min(checks_per_rater(study.gold_rate, study.pairs_per_rater), room)
    attention = min(checks_per_rater(study.attention_rate, study.pairs_per_rater), room - gold)
    return gold, attention


@dataclass(frozen=True)
class RaterChecks:
    """What each rater of the study is given, as the assignment engine will hand it out."""

    quota: int
    gold: int
    attention: int
    warnings: list[str]


def rater_checks(study: Study) -> RaterChecks:
    """The check pairs every rater gets: the scheduled slots, fewer where fewer pairs of the kind are built."""
    scheduled = dict(zip(("gold", "attention"), rater_check_counts(study), strict=True))
    rates = {"gold": study.gold_rate, "attention": study.attention_rate}
    built = {
        "gold": study.pairs.filter(kind=Pair.Kind.GOLD).count(),
        "attention": study.pairs.filter(kind=Pair.Kind.ATTENTION).count(),
    }
    given, warnings = {}, []
    for kind, slots in scheduled.items():
        given[kind] = min(slots, built[kind])
        if rates[kind] > 0 and slots == 0:
            warnings.append(
                f"{kind} rate {rates[kind]:g} x {study.pairs_per_rater} pairs rounds to 0: raters get no {kind} "
                f"pairs (a rate of at least {0.5 / max(study.pairs_per_rater, 1):.3g} gives one)"
            )
        elif slots > built[kind]:
            warnings.append(
                f"only {built[kind]} {kind} pair(s) are built, so a rater gets {built[kind]}, not {slots}"
                + (": build the pairs" if built[kind] == 0 else "")
            )
    return RaterChecks(study.pairs_per_rater, given["gold"], given["attention"], warnings)


# --------------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------------


def _words(template: str) -> set[str]:
    return set(re.findall(r"[a-z]+", template.replace("{concept}", " ").lower())) - _FILLER_WORDS


def _unrelated_prompt(image: GeneratedImage, candidates: list[GeneratedImage], rng: random.Random):
    """Of the same method's images of this concept and seed, the one whose prompt shares the fewest words."""
    own = _words(image.prompt.template)
    others = [c for c in candidates if c.prompt.template != image.prompt.template]
    if not others:
        return None
    rng.shuffle(others)
    return min(others, key=lambda c: len(own & _words(c.prompt.template)))


def _other_subject(image: GeneratedImage, candidates: list[GeneratedImage], concepts: dict[int, Concept], rng):
    """Of the same method's images of this prompt and seed, another subject; the same class word first."""
    others = [c for c in candidates if c.concept_id != image.concept_id]
    if not others:
        return None
    rng.shuffle(others)
    superclass = concepts[image.concept_id].superclass
    return min(others, key=lambda c: concepts[c.concept_id].superclass != superclass)


def _check_pair(
    study: Study,
    kind: str,
    shown: GeneratedImage,
    right: GeneratedImage,
    wrong: GeneratedImage,
    questions,
    rng: random.Random,
) -> Pair:
    """A pair about `shown`'s concept and prompt; the right image lands on side a or b at random."""
    right_is_a = rng.random() < 0.5
    image_a, image_b = (right, wrong) if right_is_a else (wrong, right)
    return Pair(
        study=study,
        comparison=None,
        kind=kind,
        image_a=image_a,
        image_b=image_b,
        concept_id=shown.concept_id,
        prompt_id=shown.prompt_id,
        seed_index=shown.seed_index,
        target_ratings=study.ratings_per_pair,
        expected=dict.fromkeys(questions, "a" if right_is_a else "b"),
    )


def _regular_sources(study: Study, rng: random.Random) -> list[GeneratedImage]:
    """The images of the study's regular pairs, each once, in a seeded random order."""
    seen, sources = set(), []
    regular = study.pairs.filter(kind=Pair.Kind.REGULAR).select_related("image_a__prompt", "image_b__prompt")
    for pair in regular.order_by("id"):
        for image in (pair.image_a, pair.image_b):
            if image.pk not in seen:
                seen.add(image.pk)
                sources.append(image)
    rng.shuffle(sources)
    return sources


class _ImageIndex:
    """The study methods' images, grouped for finding gold partners quickly."""

    def __init__(self, study: Study):
        method_ids = sorted({m for c in study.comparisons.all() for m in (c.method_a_id, c.method_b_id)})
        self.by_concept_seed: dict[tuple, list[GeneratedImage]] = {}
        self.by_prompt_seed: dict[tuple, list[GeneratedImage]] = {}
        for method_id in method_ids:
            for (concept_id, template, seed_index), image in latest_images(method_id).items():
                self.by_concept_seed.setdefault((method_id, concept_id, seed_index), []).append(image)
                self.by_prompt_seed.setdefault((method_id, template, seed_index), []).append(image)
        concept_ids = {key[1] for key in self.by_concept_seed}
        self.concepts = {c.pk: c for c in Concept.objects.filter(pk__in=concept_ids)}

    def text_partner(self, source: GeneratedImage, rng: random.Random) -> GeneratedImage | None:
        candidates = self.by_concept_seed.get((source.method_id, source.concept_id, source.seed_index), [])
        return _unrelated_prompt(source, candidates, rng)

    def image_partner(self, source: GeneratedImage, rng: random.Random) -> GeneratedImage | None:
        candidates = self.by_prompt_seed.get((source.method_id, source.prompt.template, source.seed_index), [])
        return _other_subject(source, candidates, self.concepts, rng)

    def overall_partner(self, source: GeneratedImage, rng: random.Random) -> GeneratedImage:
        return corrupted_copy(source)


def gold_pairs(study: Study) -> tuple[list[Pair], list[str]]:
    """Unsaved gold pairs: as many of each question type as a rater gets gold pairs, where possible."""
    wanted = rater_check_counts(study)[0]
    if wanted == 0:
        return [], []
    rng = random.Random(f"gold-{study.random_seed}")
    sources = _regular_sources(study, rng)
    index = _ImageIndex(study)
    partners = {"text": index.text_partner, "image": index.image_partner, "overall": index.overall_partner}
    pairs, notes, used = [], [], set()
    for question in QUESTIONS:
        made = 0
        for source in sources:
            if made == wanted:
                break
            wrong = partners[question](source, rng)
            if wrong is not None and frozenset((source.pk, wrong.pk)) not in used:
                used.add(frozenset((source.pk, wrong.pk)))
                pairs.append(_check_pair(study, Pair.Kind.GOLD, source, source, wrong, [question], rng))
                made += 1
        if made < wanted:
            notes.append(
                f"only {made} of {wanted} gold pairs for the {question} question could be built "
                f"({_SHORT_BECAUSE[question]})"
            )
    return pairs, notes


def attention_pairs(study: Study) -> list[Pair]:
    """A real study image against a plain grey square: the real image is the answer to all three questions."""
    wanted = 2 * rater_check_counts(study)[1]
    if wanted == 0:
        return []
    rng = random.Random(f"attention-{study.random_seed}")
    sources = _regular_sources(study, rng)[:wanted]
    return [_check_pair(study, Pair.Kind.ATTENTION, s, s, grey_copy(s), QUESTIONS, rng) for s in sources]


# --------------------------------------------------------------------------------------------
# Scoring (shared by the rater flow and the results)
# --------------------------------------------------------------------------------------------


def scored_answers(pair: Pair, answers: dict[str, str]) -> dict[str, bool]:
    """For a check pair: question -> answered right. Only the questions in `expected` count; a tie is a miss."""
    expected = pair.expected.items()
    return {question: answers.get(question) == right for question, right in expected if question in QUESTIONS}


def check_failed(pair: Pair, answers: dict[str, str]) -> bool:
    """A gold or attention pair is failed when any of its scored questions is answered wrong."""
    return pair.kind != Pair.Kind.REGULAR and not all(scored_answers(pair, answers).values())


def attention_failures_allowed(study: Study) -> int:
    """Failed attention checks a rater may have before being screened out (the next one screens out)."""
    value = (study.exclusion_rules or {}).get("max_attention_failures")
    return DEFAULT_ATTENTION_FAILURES_ALLOWED if value is None else int(value)
