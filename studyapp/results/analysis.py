"""A study's results: the answer table into `stats`, with the study's settings and exclusions, cached.

Every number is recomputed from the answers. The expensive part (`analyse` with and without
exclusions) is cached under a key made of the data hash, the comparisons, the analysis settings
and the exclusions, so a new answer, a changed rule or a rater excluded by hand gives a new key:
nothing stale can be served.
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
from studyapp.models import Comparison, Study
from studyapp.results.exclusions import excluded_by_hand, exclusion_rules
from studyapp.results.pseudonyms import pseudonym
from studyapp.results.table import QUESTION_IDS, answer_table, comparison_specs, data_hash

MAX_RESAMPLES = 20000
SETTING_PARAMS = ("n_resamples", "seed", "confidence_level", "alpha", "test", "ties", "cluster")


class SettingsError(ValueError):
    """A requested analysis setting is malformed (a client error)."""


def settings_overrides(query: Mapping[str, str]) -> dict[str, str]:
    """The analysis settings a request asks for (its query string), blank values left out."""
    return {name: query[name] for name in SETTING_PARAMS if query.get(name, "") != ""}


def analysis_settings(study: Study, overrides: Mapping[str, Any] | None = None) -> stats.AnalysisSettings:
    """The study's analysis settings: bootstrap size from RESULTS_BOOTSTRAP_RESAMPLES (default 2000),
    seed from the study's random seed, all three questions; ``overrides`` may set SETTING_PARAMS.

    Raises SettingsError naming the setting when an override is malformed."""
    values: dict[str, Any] = {
        "n_resamples": django_settings.RESULTS_BOOTSTRAP_RESAMPLES,
        "seed": abs(int(study.random_seed)),
        "questions": tuple(QUESTION_IDS.values()),
    }
    converters = {"n_resamples": int, "seed": int, "confidence_level": float, "alpha": float}
    for name, raw in (overrides or {}).items():
        if name not in SETTING_PARAMS:
            continue
        try:
            values[name] = converters.get(name, str)(raw)
        except (TypeError, ValueError):
            raise SettingsError(f"{name}: expected a number, got {raw!r}") from None
    if not 0 <= values["n_resamples"] <= MAX_RESAMPLES:
        raise SettingsError(f"n_resamples: expected 0 to {MAX_RESAMPLES}, got {values['n_resamples']}")
    if values["seed"] < 0:
        raise SettingsError(f"seed: expected a non-negative integer, got {values['seed']}")
    try:
        return stats.AnalysisSettings(**values)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None


@dataclass(frozen=True)
class StudyResults:
    """Everything the results page, the exports and the API show for one study."""

    study_id: int
    data_hash: str
    settings: stats.AnalysisSettings
    rules: stats.ExclusionRules | None
    excluded_by_hand: tuple[int, ...]
    sensitivity: stats.SensitivityResult
    table: stats.AnswerTable
    comparisons: tuple[Comparison, ...]

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
        return int(np.unique(self.table.rater).size)

    @property
    def n_answers(self) -> int:
        """Answers (not rows): a pair's three questions count once."""
        return int(np.unique(np.stack([self.table.rater, self.table.pair]), axis=1).shape[1]) if len(self.table) else 0

    def exclusion_reasons(self) -> dict[int, list[str]]:
        reasons = {rater: ["excluded by hand"] for rater in self.excluded_by_hand}
        if self.sensitivity.exclusions is not None:
            for rater, found in self.sensitivity.exclusions.reasons.items():
                reasons.setdefault(rater, []).extend(found)
        return reasons

    def settings_dict(self) -> dict[str, Any]:
        return {
            **self.settings.as_dict(),
            "exclusion_rules": dataclasses.asdict(self.rules) if self.rules else {},
            "excluded_by_hand": [pseudonym(r) for r in self.excluded_by_hand],
        }


def study_results(study: Study, overrides: Mapping[str, Any] | None = None) -> StudyResults:
    """Analyse a study with and without exclusions; cached by data hash + settings + exclusions."""
    settings = analysis_settings(study, overrides)
    rules = exclusion_rules(study)
    by_hand = excluded_by_hand(study)
    comparisons = tuple(study.comparisons.select_related("method_a", "method_b").order_by("position", "id"))
    specs = comparison_specs(list(comparisons))
    table = answer_table(study)
    digest = data_hash(table)
    key_material = json.dumps(
        [
            digest,
            [dataclasses.astuple(s) for s in specs],
            settings.as_dict(),
            dataclasses.asdict(rules) if rules else None,
            by_hand,
        ],
        sort_keys=True,
        default=str,
    )
    key = "studyapp.results:" + hashlib.sha256(key_material.encode()).hexdigest()
    sensitivity = cache.get(key)
    if sensitivity is None:
        sensitivity = stats.analyse_with_and_without_exclusions(
            table, specs, settings, rules=rules, excluded_raters=by_hand
        )
        cache.set(key, sensitivity, django_settings.RESULTS_CACHE_SECONDS)
    return StudyResults(study.pk, digest, settings, rules, by_hand, sensitivity, table, comparisons)
