"""A study's life cycle: build its pairs, publish (which freezes the design), close, make a new version."""

import re
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from studyapp.models import QUESTIONS, Comparison, Pair, Study
from studyapp.studies.checks import attention_pairs, gold_pairs
from studyapp.studies.freeze import refuse_if_frozen
from studyapp.studies.pairs import build_pairs, sync_pairs


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
            study=follower,
            method_a_id=comparison.method_a_id,
            method_b_id=comparison.method_b_id,
            position=comparison.position,
        )
    return follower
