"""A study's results: the answer table into `stats`, with the study's settings and exclusions, cached.

Every number is recomputed from the answers. The expensive part (the answer table, `analyse` with
and without exclusions, the metric comparisons and the breakdowns) is cached under a key made of a
fingerprint of the data (a few aggregate queries, `table.data_fingerprint`), the comparisons, the
analysis settings and the exclusions, so a new answer, a changed rule or a rater excluded by hand
gives a new key and nothing stale can be served, while a cache hit builds no answer table at all.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings as django_settings
from django.core.cache import cache

from studyapp import stats
from studyapp.models import Comparison, Concept, Prompt, Study
from studyapp.results.exclusions import RulesError, excluded_by_hand, exclusion_rules
from studyapp.results.metrics import PairMetrics, human_metric_agreement, metric_differences
from studyapp.results.pseudonyms import pseudonym
from studyapp.results.table import QUESTION_IDS, answer_table, comparison_specs, data_fingerprint, data_hash

MAX_RESAMPLES = 20000
SETTING_PARAMS = (
    "procedure",
    "random_factors",
    "multiplicity",
    "n_resamples",
    "seed",
    "confidence_level",
    "alpha",
    "weights",
    "ties",
)
# Settings an old link may still carry: refused with what replaced them, never silently ignored.
RETIRED_PARAMS = {
    "test": "the interval, the p-value and the mark come from one procedure now: use procedure=crossed or bootstrap",
    "cluster": "which factors are random is random_factors now, e.g. random_factors=rater,prompt",
}
CACHE_VERSION = "crossed-1"  # part of the cache key: a change of the statistics never serves old numbers


class SettingsError(ValueError):
    """A requested analysis setting is malformed (a client error)."""


def settings_overrides(query: Mapping[str, str]) -> dict[str, str]:
    """The analysis settings a request asks for (its query string), blank values left out."""
    names = (*SETTING_PARAMS, *RETIRED_PARAMS)
    return {name: query[name] for name in names if query.get(name, "") != ""}


def study_random_factors(study: Study) -> tuple[str, ...]:
    """The factors the study treats as random: all of rater, subject, prompt but its declared fixed ones."""
    fixed = study.fixed_factors or []
    if not isinstance(fixed, list) or not set(fixed) <= set(stats.FACTORS):
        raise RulesError(
            f"study {study.slug}: fixed_factors: expected a list of names from {', '.join(stats.FACTORS)}, "
            f"got {fixed!r}"
        )
    return tuple(f for f in stats.FACTORS if f not in fixed)


def _factor_list(raw: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in raw.split(",") if part.strip())
    return () if names == ("none",) else names


CONVERTERS = {
    "n_resamples": int,
    "seed": int,
    "confidence_level": float,
    "alpha": float,
    "random_factors": _factor_list,
}


def analysis_settings(study: Study, overrides: Mapping[str, Any] | None = None) -> stats.AnalysisSettings:
    """The study's analysis settings: the crossed procedure, its declared random factors, resamples from
    RESULTS_BOOTSTRAP_RESAMPLES, seed from the study's random seed, all three questions; ``overrides``
    may set SETTING_PARAMS.

    Raises SettingsError naming the setting when an override is malformed or retired."""
    values: dict[str, Any] = {
        "n_resamples": django_settings.RESULTS_BOOTSTRAP_RESAMPLES,
        "seed": abs(int(study.random_seed)),
        "questions": tuple(QUESTION_IDS.values()),
        "random_factors": study_random_factors(study),
    }
    for name, raw in (overrides or {}).items():
        if name in RETIRED_PARAMS:
            raise SettingsError(f"{name}: no longer a setting; {RETIRED_PARAMS[name]}")
        if name not in SETTING_PARAMS:
            continue
        try:
            values[name] = CONVERTERS.get(name, str)(raw)
        except (TypeError, ValueError):
            raise SettingsError(f"{name}: expected a number, got {raw!r}") from None
    if not 1 <= values["n_resamples"] <= MAX_RESAMPLES:
        raise SettingsError(
            f"n_resamples: expected 1 to {MAX_RESAMPLES} (the bootstrap and the agreement interval resample; "
            f"with none there is no interval to show), got {values['n_resamples']}"
        )
    if values["seed"] < 0:
        raise SettingsError(f"seed: expected a non-negative integer, got {values['seed']}")
    try:
        return stats.AnalysisSettings(**values)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None


@dataclass(frozen=True)
class Computed:
    """What a cache hit returns: everything derived from the answers, so no answer is read again."""

    data_hash: str
    sensitivity: stats.SensitivityResult
    n_raters: int
    n_answers: int  # answers, not rows: a pair's three questions count once
    human_metric: tuple[dict[str, Any], ...]
    metric_differences: tuple[dict[str, Any], ...]
    breakdowns: Mapping[str, tuple[dict[str, Any], ...]]  # "subject" / "prompt" -> rows


@dataclass(frozen=True)
class StudyResults:
    """Everything the results page, the exports and the API show for one study."""

    study_id: int
    settings: stats.AnalysisSettings
    rules: stats.ExclusionRules | None
    excluded_by_hand: tuple[int, ...]
    comparisons: tuple[Comparison, ...]
    computed: Computed

    @property
    def data_hash(self) -> str:
        return self.computed.data_hash

    @property
    def sensitivity(self) -> stats.SensitivityResult:
        return self.computed.sensitivity

    @property
    def primary(self) -> stats.AnalysisResult:
        """Results without the excluded raters (the pre-registered analysis)."""
        return self.sensitivity.with_exclusions

    @property
    def all_raters(self) -> stats.AnalysisResult:
        return self.sensitivity.all_raters

    @property
    def excluded_raters(self) -> tuple[int, ...]:
        return self.sensitivity.excluded_raters

    @property
    def n_raters(self) -> int:
        return self.computed.n_raters

    @property
    def n_answers(self) -> int:
        return self.computed.n_answers

    def exclusion_reasons(self) -> dict[int, list[str]]:
        reasons = {rater: ["excluded by hand"] for rater in self.excluded_by_hand}
        if self.sensitivity.exclusions is not None:
            for rater, found in self.sensitivity.exclusions.reasons.items():
                reasons.setdefault(rater, []).extend(found)
        return reasons

    def settings_dict(self) -> dict[str, Any]:
        return {
            **self.settings.as_dict(),
            "fixed_factors": list(self.settings.fixed_factors),
            "resamples_used": self.primary.n_resamples,
            "procedure_described": self.primary.procedure,
            "exclusion_rules": dataclasses.asdict(self.rules) if self.rules else {},
            "excluded_by_hand": [pseudonym(r) for r in self.excluded_by_hand],
        }


def study_results(study: Study, overrides: Mapping[str, Any] | None = None) -> StudyResults:
    """Analyse a study with and without exclusions; cached by data fingerprint + settings + exclusions."""
    settings = analysis_settings(study, overrides)
    rules = exclusion_rules(study)
    by_hand = excluded_by_hand(study)
    comparisons = tuple(study.comparisons.select_related("method_a", "method_b").order_by("position", "id"))
    specs = comparison_specs(list(comparisons))
    key_material = json.dumps(
        [
            CACHE_VERSION,
            data_fingerprint(study),
            [dataclasses.astuple(s) for s in specs],
            settings.as_dict(),
            dataclasses.asdict(rules) if rules else None,
            by_hand,
        ],
        sort_keys=True,
        default=str,
    )
    key = "studyapp.results:" + hashlib.sha256(key_material.encode()).hexdigest()
    computed = cache.get(key)
    if computed is None:
        computed = _compute(study, comparisons, specs, settings, rules, by_hand)
        cache.set(key, computed, django_settings.RESULTS_CACHE_SECONDS)
    return StudyResults(study.pk, settings, rules, by_hand, comparisons, computed)


def _compute(study, comparisons, specs, settings, rules, by_hand) -> Computed:
    table = answer_table(study)
    sensitivity = stats.analyse_with_and_without_exclusions(
        table, specs, settings, rules=rules, excluded_raters=by_hand
    )
    kept = table.without_raters(sensitivity.excluded_raters) if sensitivity.excluded_raters else table
    pair_metrics = PairMetrics.of(study)
    answers = np.unique(np.stack([table.rater, table.pair]), axis=1).shape[1] if len(table) else 0
    return Computed(
        data_hash=data_hash(table),
        sensitivity=sensitivity,
        n_raters=int(np.unique(table.rater).size),
        n_answers=int(answers),
        human_metric=tuple(human_metric_agreement(kept, comparisons, pair_metrics, settings.random_factors)),
        metric_differences=tuple(metric_differences(comparisons, pair_metrics, settings)),
        breakdowns={by: tuple(_breakdown_rows(kept, specs, settings, by)) for by in ("subject", "prompt")},
    )


def _breakdown_rows(table: stats.AnswerTable, specs, settings: stats.AnalysisSettings, by: str) -> list[dict]:
    """Per-subject (or per-prompt) win rates after exclusions, with the names of the levels."""
    rows = stats.win_rate_breakdown(
        table,
        specs,
        by=by,
        questions=settings.questions,
        random_factors=settings.random_factors,
        confidence_level=settings.confidence_level,
    )
    levels = {row.level for row in rows}
    if by == "subject":
        names = dict(Concept.objects.filter(pk__in=levels).values_list("pk", "slug"))
    else:
        names = dict(Prompt.objects.filter(pk__in=levels).values_list("pk", "template"))
    labels = {spec.id: spec.label for spec in specs}
    return [
        {**dataclasses.asdict(row), "name": names.get(row.level, str(row.level)), "label": labels[row.comparison]}
        for row in rows
    ]
