"""Setting a study up: check pairs (gold and attention), publishing, closing, new versions, design freeze.

Check pairs are built from the study's own images so that they look like normal pairs: same image size
and file format, content-hash file names, random tokens. What they test lives in ``Pair.expected``:
``{"text": "a"}`` means image A is the right answer to the text question; only the questions named there
are scored. docs/study-setup.md describes the rules.
"""

import hashlib
import io
import math
import random
import re
from dataclasses import dataclass, field

import numpy as np
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone
from PIL import Image, ImageFilter

from studyapp.models import Comparison, Concept, GeneratedImage, GenerationRun, Method, Pair, Study
from studyapp.pairs import StudyFrozen, build_pairs, latest_images, refuse_if_frozen, sync_pairs

QUESTIONS = ("text", "image", "overall")
GOLD_METHOD = "gold-corrupted"
ATTENTION_METHOD = "attention-grey"
CHECK_METHODS = (GOLD_METHOD, ATTENTION_METHOD)
ATTENTION_GREY = (128, 128, 128)
# Prolific: a participant must fail two attention checks before being asked to return.
DEFAULT_ATTENTION_FAILURES_ALLOWED = 1

# Fields that define what is measured; they freeze when the study is published. The others
# (title, completion code and links, lease time, state) can still be corrected on a live study.
DESIGN_FIELDS = (
    "slug", "version", "previous_version_id", "instructions", "consent_text",
    "question_text", "question_image", "question_overall", "ratings_per_pair",
    "overlap_fraction", "overlap_ratings", "pairs_per_rater", "gold_rate", "attention_rate",
    "random_seed", "exclusion_rules",
)  # fmt: skip
STATE_MOVES = {
    Study.State.DRAFT: {Study.State.DRAFT, Study.State.PUBLISHED},
    Study.State.PUBLISHED: {Study.State.PUBLISHED, Study.State.CLOSED},
    Study.State.CLOSED: {Study.State.CLOSED},
}


# --------------------------------------------------------------------------------------------
# Design freeze, enforced on save
# --------------------------------------------------------------------------------------------


def refuse_study_design_change(study: Study) -> None:
    """Called by Study.save: a frozen study keeps its design fields; state only moves forward."""
    if study.pk is None:
        return
    stored = Study.objects.filter(pk=study.pk).values("state", *DESIGN_FIELDS).first()
    if stored is None:
        return
    if study.state not in STATE_MOVES[stored["state"]]:
        raise StudyFrozen(f"study {study.slug!r}: cannot go from {stored['state']} back to {study.state}")
    if stored["state"] == Study.State.DRAFT:
        return
    changed = [name for name in DESIGN_FIELDS if getattr(study, name) != stored[name]]
    if changed:
        raise StudyFrozen(
            f"study {study.slug!r} is {stored['state']}: its design fields {', '.join(changed)} cannot change; "
            "make a new version to change them"
        )


def refuse_comparison_change(comparison: Comparison) -> None:
    """Called by Comparison.save and Comparison.delete."""
    refuse_if_frozen(Study.objects.get(pk=comparison.study_id), f"changing comparison {comparison}")


# --------------------------------------------------------------------------------------------
# Study life cycle
# --------------------------------------------------------------------------------------------


@dataclass
class BuildReport:
    regular: int = 0
    gold: dict[str, int] = field(default_factory=dict)
    attention: int = 0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        gold = ", ".join(f"{count} {question}" for question, count in self.gold.items()) or "none"
        text = f"{self.regular} regular pairs, gold pairs: {gold}, {self.attention} attention checks"
        return text + "".join(f". {note}" for note in self.notes)


@transaction.atomic
def build_study_pairs(study: Study) -> BuildReport:
    """Sync all pairs of a draft study: regular, gold and attention. Running it twice changes nothing."""
    study = Study.objects.select_for_update().get(pk=study.pk)
    refuse_if_frozen(study, "building pairs")
    report = BuildReport(regular=build_pairs(study))
    wanted_gold, notes = gold_pairs(study)
    sync_pairs(study, wanted_gold, [Pair.Kind.GOLD])
    report.gold = {question: sum(1 for p in wanted_gold if question in p.expected) for question in QUESTIONS}
    wanted_attention = attention_pairs(study)
    sync_pairs(study, wanted_attention, [Pair.Kind.ATTENTION])
    report.attention = len(wanted_attention)
    report.notes = notes
    return report


@transaction.atomic
def publish(study: Study) -> BuildReport:
    """Build the pairs one last time, then freeze the design and open the study to raters."""
    report = build_study_pairs(study)
    study = Study.objects.select_for_update().get(pk=study.pk)
    if not study.comparisons.exists():
        raise ValueError(f"study {study.slug!r}: add at least one comparison before publishing")
    if report.regular == 0:
        raise ValueError(
            f"study {study.slug!r}: no pairs could be built; each comparison needs images of both methods "
            "for the same concept, prompt and seed index"
        )
    study.state, study.published = Study.State.PUBLISHED, timezone.now()
    study.save(update_fields=["state", "published"])
    return report


def close(study: Study) -> Study:
    study = Study.objects.get(pk=study.pk)
    if study.state != Study.State.PUBLISHED:
        raise ValueError(f"study {study.slug!r}: only a published study can be closed, this one is {study.state}")
    study.state = Study.State.CLOSED
    study.save(update_fields=["state"])
    return study


def _free_slug(base: str, version: int) -> str:
    stem = re.sub(r"-v\d+$", "", base)
    slug = f"{stem}-v{version}"
    suffix = 2
    while Study.objects.filter(slug=slug).exists():
        slug, suffix = f"{stem}-v{version}-{suffix}", suffix + 1
    return slug


@transaction.atomic
def new_version(study: Study) -> Study:
    """A draft copy (version + 1) with the same settings and comparisons, ready to edit; pairs are rebuilt on it."""
    successor = Study.objects.filter(previous_version_id=study.pk).first()
    if successor is not None:
        raise ValueError(f"study {study.slug!r} already has a new version, {successor.slug!r}: edit that one")
    follower = Study.objects.get(pk=study.pk)
    follower.pk = follower.id = None
    follower._state.adding = True
    follower.version += 1
    follower.slug = _free_slug(study.slug, follower.version)
    follower.previous_version_id = study.pk
    follower.state, follower.published, follower.created = Study.State.DRAFT, None, timezone.now()
    follower.open_link_token = Study._meta.get_field("open_link_token").get_default()
    follower.save()
    for comparison in study.comparisons.all():
        Comparison.objects.create(
            study=follower, method_a_id=comparison.method_a_id, method_b_id=comparison.method_b_id,
            position=comparison.position,
        )  # fmt: skip
    return follower


# --------------------------------------------------------------------------------------------
# Gold pairs
# --------------------------------------------------------------------------------------------


def checks_per_rater(rate: float, quota: int) -> int:
    return math.ceil(rate * quota - 1e-9)


_FILLER_WORDS = {"a", "an", "the", "of", "in", "on", "with"}


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


def _check_pair(study: Study, kind: str, shown: GeneratedImage, right: GeneratedImage, wrong: GeneratedImage,
                questions, rng: random.Random) -> Pair:
    """A pair about `shown`'s concept and prompt; the right image lands on side a or b at random."""
    right_is_a = rng.random() < 0.5
    image_a, image_b = (right, wrong) if right_is_a else (wrong, right)
    return Pair(
        study=study, comparison=None, kind=kind, image_a=image_a, image_b=image_b,
        concept_id=shown.concept_id, prompt_id=shown.prompt_id, seed_index=shown.seed_index,
        target_ratings=study.ratings_per_pair, expected={q: "a" if right_is_a else "b" for q in questions},
    )  # fmt: skip


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
    """Unsaved gold pairs, `checks_per_rater(gold_rate, pairs_per_rater)` of each question type where possible."""
    wanted = checks_per_rater(study.gold_rate, study.pairs_per_rater)
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


_SHORT_BECAUSE = {
    "text": "needs images of one concept and seed for two different prompts",
    "image": "needs a second concept with images for the same prompt and seed",
    "overall": "needs regular pairs",
}


# --------------------------------------------------------------------------------------------
# Check images: corrupted copies and grey squares, stored under hidden external methods
# --------------------------------------------------------------------------------------------


def check_method(name: str) -> Method:
    descriptions = {
        GOLD_METHOD: "Corrupted copies of study images, for gold pairs on the overall question. Not a method.",
        ATTENTION_METHOD: "Plain grey squares, for attention checks. Not a method to compare.",
    }
    method, _ = Method.objects.get_or_create(
        name=name, defaults={"kind": Method.Kind.EXTERNAL, "sampler": "", "description": descriptions[name]}
    )
    return method


def _check_run(method: Method, source_method: Method) -> GenerationRun:
    label = f"{method.name} for {source_method.name}"
    run = method.runs.filter(label=label).first()
    return run or GenerationRun.objects.create(method=method, label=label, state=GenerationRun.State.DONE)


def _source_format(source: GeneratedImage) -> str:
    extension = source.file.name.rsplit(".", 1)[-1].lower()
    return {"png": "PNG", "webp": "WEBP"}.get(extension, "JPEG")


def _encode_like(image: Image.Image, image_format: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **({"quality": 95} if image_format in ("JPEG", "WEBP") else {}))
    return buffer.getvalue()


def corrupt(data: bytes, image_format: str, seed: int) -> bytes:
    """Heavy blur, JPEG-5 blocking and grain, encoded back in the source's format and size."""
    with Image.open(io.BytesIO(data)) as opened:
        image = opened.convert("RGB")
    image = image.filter(ImageFilter.GaussianBlur(radius=max(2.0, max(image.size) / 60)))
    blocky = io.BytesIO()
    image.save(blocky, format="JPEG", quality=5)
    with Image.open(blocky) as reopened:
        pixels = np.asarray(reopened.convert("RGB"), dtype=np.float32)
    # Grain last, so that it shows even on smooth images, where blur and blocking change little.
    noise = np.random.default_rng(seed).normal(0, 30, pixels.shape)
    return _encode_like(Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8)), image_format)


def grey_square(width: int, height: int, image_format: str) -> bytes:
    return _encode_like(Image.new("RGB", (width, height), ATTENTION_GREY), image_format)


def _store_check_image(method: Method, source: GeneratedImage, data: bytes, image_format: str) -> GeneratedImage:
    run = _check_run(method, source.method)
    existing = GeneratedImage.objects.filter(
        run=run, concept_id=source.concept_id, prompt_id=source.prompt_id, seed_index=source.seed_index
    ).first()
    content_hash = hashlib.sha256(data).hexdigest()
    if existing is not None and existing.content_hash == content_hash:
        return existing
    if existing is not None:
        existing.delete()  # the source image was replaced; its old copy is stale
    image = GeneratedImage(
        run=run, method=method, concept_id=source.concept_id, prompt_id=source.prompt_id,
        seed_index=source.seed_index, seed=source.seed, content_hash=content_hash,
    )  # fmt: skip
    extension = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}[image_format]
    path = image.file.field.generate_filename(image, f"image.{extension}")
    if image.file.storage.exists(path):
        image.file.name = path  # same bytes already stored (e.g. a grey square of this size)
    else:
        image.file.save(f"image.{extension}", ContentFile(data), save=False)
    with Image.open(io.BytesIO(data)) as opened:
        image.width, image.height = opened.size
    image.save()
    return image


def corrupted_copy(source: GeneratedImage) -> GeneratedImage:
    image_format = _source_format(source)
    with source.file.open("rb") as handle:
        data = handle.read()
    seed = int(source.content_hash[:8], 16)
    return _store_check_image(check_method(GOLD_METHOD), source, corrupt(data, image_format, seed), image_format)


def grey_copy(source: GeneratedImage) -> GeneratedImage:
    image_format = _source_format(source)
    data = grey_square(source.width, source.height, image_format)
    return _store_check_image(check_method(ATTENTION_METHOD), source, data, image_format)


# --------------------------------------------------------------------------------------------
# Attention checks
# --------------------------------------------------------------------------------------------


def attention_pairs(study: Study) -> list[Pair]:
    """A real study image against a plain grey square: the real image is the answer to all three questions."""
    wanted = 2 * checks_per_rater(study.attention_rate, study.pairs_per_rater)
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
