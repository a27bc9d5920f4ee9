"""The design freeze: once a study is published, what it measures cannot change; a new version can.

The guards are signal receivers, connected in StudyAppConfig.ready, so models.py knows nothing of
them and every writer goes through them: the admin, the API, the commands, a shell, a test.
Saves are checked on pre_save; deleting one comparison on the models' own `deletion_requested`, sent
before Django's deletion transaction opens, so a refusal leaves the caller's transaction usable;
deleting comparisons in bulk on pre_delete. Only ``QuerySet.update`` bypasses them, as it bypasses
every save.
"""

from django.db.models import QuerySet
from django.db.models.signals import pre_delete, pre_save

from studyapp.models import Comparison, Study, deletion_requested


class StudyFrozen(Exception):
    """A published study's design cannot change; make a new version instead."""


# Fields that define what is measured; they freeze when the study is published. The others
# (title, completion code and links, lease time, state) can still be corrected on a live study.
DESIGN_FIELDS = (
    "slug",
    "version",
    "previous_version_id",
    "instructions",
    "consent_text",
    "question_text",
    "question_image",
    "question_overall",
    "ratings_per_pair",
    "overlap_fraction",
    "overlap_ratings",
    "pairs_per_rater",
    "gold_rate",
    "attention_rate",
    "random_seed",
    "exclusion_rules",
    "fixed_factors",
    "display_size",
)
STATE_MOVES = {
    Study.State.DRAFT: {Study.State.DRAFT, Study.State.PUBLISHED},
    Study.State.PUBLISHED: {Study.State.PUBLISHED, Study.State.CLOSED},
    Study.State.CLOSED: {Study.State.CLOSED},
}


def refuse_if_frozen(study: Study, what: str) -> None:
    if study.is_frozen:
        raise StudyFrozen(
            f"{what}: study {study.slug!r} is {study.state}, so its design is fixed; make a new version to change it"
        )


def refuse_study_design_change(study: Study) -> None:
    """A frozen study keeps its design fields; its state only moves forward."""
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
    refuse_if_frozen(Study.objects.get(pk=comparison.study_id), f"changing comparison {comparison}")


def _before_study_save(sender, instance: Study, raw: bool = False, **kwargs) -> None:
    if not raw:  # loaddata writes rows as they were dumped
        refuse_study_design_change(instance)


def _before_comparison_save(sender, instance: Comparison, raw: bool = False, **kwargs) -> None:
    if not raw:
        refuse_comparison_change(instance)


def _before_comparison_delete(sender, instance: Comparison, **kwargs) -> None:
    refuse_comparison_change(instance)


def _before_bulk_comparison_delete(sender, instance: Comparison, origin=None, **kwargs) -> None:
    if isinstance(origin, Comparison):
        return  # one comparison's own delete(): already checked before its transaction began
    if isinstance(origin, Study) or (isinstance(origin, QuerySet) and origin.model is Study):
        return  # the study itself goes, and its comparisons with it
    refuse_comparison_change(instance)


def connect() -> None:
    """Guard every save of a study and every save or delete of a comparison (idempotent)."""
    pre_save.connect(_before_study_save, sender=Study, dispatch_uid="studyapp.freeze.study_save")
    pre_save.connect(_before_comparison_save, sender=Comparison, dispatch_uid="studyapp.freeze.comparison_save")
    deletion_requested.connect(_before_comparison_delete, sender=Comparison, dispatch_uid="studyapp.freeze.delete")
    pre_delete.connect(_before_bulk_comparison_delete, sender=Comparison, dispatch_uid="studyapp.freeze.bulk_delete")
