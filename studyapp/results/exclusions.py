"""Which raters the analysis leaves out: by the study's pre-registered rules, or by hand in the admin."""

import dataclasses

from studyapp import stats
from studyapp.models import Rater, Study
from studyapp.results.table import answer_table


class RulesError(ValueError):
    """The study's stored exclusion rules are malformed (fix them in the admin)."""


def exclusion_rules(study: Study) -> stats.ExclusionRules | None:
    """The study's pre-registered rules (Study.exclusion_rules), or None when it declares none."""
    raw = study.exclusion_rules or {}
    if not isinstance(raw, dict):
        raise RulesError(f"study {study.slug}: exclusion_rules: expected a JSON object, got {raw!r}")
    known = {f.name for f in dataclasses.fields(stats.ExclusionRules)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise RulesError(
            f"study {study.slug}: exclusion_rules: unknown {', '.join(unknown)}; "
            f"expected keys from {', '.join(sorted(known))}"
        )
    for name, value in raw.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise RulesError(f"study {study.slug}: exclusion_rules: {name}: expected a number or null, got {value!r}")
    return stats.ExclusionRules(**raw) if raw else None


def excluded_by_hand(study: Study) -> tuple[int, ...]:
    return tuple(Rater.objects.filter(study=study, excluded=True).order_by("id").values_list("id", flat=True))


def apply_study_rules(study: Study) -> dict[int, list[str]]:
    """Mark raters that break the study's exclusion rules as excluded (with the reasons); returns them.

    Raters already excluded keep their flag; the rules never re-include anyone."""
    rules = exclusion_rules(study)
    if rules is None:
        return {}
    found = stats.apply_exclusion_rules(stats.rater_quality(answer_table(study)), rules)
    raters = Rater.objects.filter(study=study, pk__in=list(found.reasons))
    for rater in raters:
        rater.excluded = True
        rater.exclusion_reason = "; ".join(found.reasons[rater.pk])[:300]
    Rater.objects.bulk_update(raters, ["excluded", "exclusion_reason"])
    return {rater: list(reasons) for rater, reasons in found.reasons.items()}
