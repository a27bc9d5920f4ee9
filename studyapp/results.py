"""A study's results: answers from the database into `stats`, with the study's settings and exclusions.

Every number is recomputed from the answers. The expensive part (`analyse` with and without
exclusions) is cached under a key made of the data hash, the comparisons, the analysis settings
and the exclusions, so a new answer, a changed rule or a rater excluded by hand gives a new key:
nothing stale can be served. Snapshots freeze the JSON form of the results.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings as django_settings
from django.core.cache import cache
from django.db.models import Avg, Count, Q, StdDev
from django.utils.crypto import salted_hmac

from studyapp import stats
from studyapp.models import AnalysisSnapshot, Answer, Comparison, MetricScore, Pair, Rater, Study
from studyapp.setup import QUESTIONS

QUESTION_IDS = {name: index for index, name in enumerate(QUESTIONS)}  # text 0, image 1, overall 2
OUTCOME = {Answer.Choice.A: stats.A_WINS, Answer.Choice.TIE: stats.TIE, Answer.Choice.B: stats.B_WINS}
SHOWN_METRICS = ("clip_ts", "clip_is", "dino_is")
METRIC_LABELS = {"clip_ts": "CLIP-TS", "clip_is": "CLIP-IS", "dino_is": "DINO-IS"}
# Which metric should pick the same winner as which question.
HUMAN_METRIC_CHECKS = (("text", "clip_ts"), ("image", "clip_is"), ("image", "dino_is"))
MAX_RESAMPLES = 20000
SETTING_PARAMS = ("n_resamples", "seed", "confidence_level", "alpha", "test", "ties", "cluster")


class SettingsError(ValueError):
    """A requested analysis setting is malformed (a client error)."""


class RulesError(ValueError):
    """The study's stored exclusion rules are malformed (fix them in the admin)."""


# ------------------------------------------------------------------------------- pseudonyms, JSON


def pseudonym(rater_id: int) -> str:
    """A stable, non-reversible rater id for exports (HMAC of the id with SECRET_KEY)."""
    return salted_hmac("studyapp.results.rater", str(int(rater_id))).hexdigest()[:16]


def json_safe(value: Any) -> Any:
    """Plain JSON types only: NaN and infinities become None, numpy scalars and arrays become Python."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ------------------------------------------------------------------------------- the answer table


def answer_table(study: Study) -> stats.AnswerTable:
    """One row per (answer, question) in method space; check pairs give rows only for their scored
    questions, with ``check_passed`` ("Can't decide" on a check is a miss)."""
    expected = dict(Pair.objects.filter(study=study).exclude(kind=Pair.Kind.REGULAR).values_list("id", "expected"))
    answers = (
        Answer.objects.filter(pair__study=study)
        .order_by("id")
        .values_list("rater_id", "pair_id", "pair__kind", "pair__comparison_id", "pair__prompt_id",
                     "text", "image", "overall", "left_is_a", "response_ms")  # fmt: skip
    )
    columns: dict[str, list] = {name: [] for name in stats.AnswerTable.COLUMNS}
    for rater, pair, kind, comparison, prompt, *choices, left_is_a, response_ms in answers.iterator(chunk_size=5000):
        scored = expected.get(pair, {}) if kind != Pair.Kind.REGULAR else None
        for question, choice in zip(QUESTIONS, choices):
            if scored is not None and question not in scored:
                continue
            row = (
                -1 if comparison is None else comparison, QUESTION_IDS[question], rater, prompt, pair,
                OUTCOME[choice], left_is_a, math.nan if response_ms is None else response_ms,
                kind == Pair.Kind.GOLD, kind == Pair.Kind.ATTENTION,
                scored is not None and choice == scored[question],
            )  # fmt: skip
            for name, value in zip(stats.AnswerTable.COLUMNS, row):
                columns[name].append(value)
    if not columns["outcome"]:
        return stats.AnswerTable.empty()
    return stats.AnswerTable.from_lists(**columns)


def comparison_specs(comparisons: list[Comparison]) -> list[stats.ComparisonSpec]:
    return [stats.ComparisonSpec(c.pk, c.method_a_id, c.method_b_id, label=str(c)) for c in comparisons]


def data_hash(table: stats.AnswerTable) -> str:
    """SHA-256 over every column of the analysis input, in answer order."""
    digest = hashlib.sha256()
    for name in stats.AnswerTable.COLUMNS:
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(getattr(table, name)).tobytes())
    return digest.hexdigest()


# ------------------------------------------------------------------------------- settings, exclusions


def analysis_settings(study: Study, overrides: Mapping[str, Any] | None = None) -> stats.AnalysisSettings:
    """The study's analysis settings: bootstrap size from RESULTS_BOOTSTRAP_RESAMPLES (default 2000),
    seed from the study's random seed, all three questions; ``overrides`` may set SETTING_PARAMS.

    Raises SettingsError naming the setting when an override is malformed."""
    values: dict[str, Any] = {
        "n_resamples": getattr(django_settings, "RESULTS_BOOTSTRAP_RESAMPLES", 2000),
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


# ------------------------------------------------------------------------------- the results


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
        [digest, [dataclasses.astuple(s) for s in specs], settings.as_dict(),
         dataclasses.asdict(rules) if rules else None, by_hand],
        sort_keys=True, default=str,
    )  # fmt: skip
    key = "studyapp.results:" + hashlib.sha256(key_material.encode()).hexdigest()
    sensitivity = cache.get(key)
    if sensitivity is None:
        sensitivity = stats.analyse_with_and_without_exclusions(
            table, specs, settings, rules=rules, excluded_raters=by_hand
        )
        cache.set(key, sensitivity, getattr(django_settings, "RESULTS_CACHE_SECONDS", 3600))
    return StudyResults(study.pk, digest, settings, rules, by_hand, sensitivity, table, comparisons)


# ------------------------------------------------------------------------------- metrics beside the table


def method_metric_summary(method_ids, by_concept: bool = False) -> dict:
    """{method id: {metric: {"mean", "std", "n"}}} (or keyed by (method id, concept id)) in one query.

    Same numbers as `scoring.method_metrics` (population standard deviation)."""
    group = ["image__method_id", "image__concept_id", "metric"] if by_concept else ["image__method_id", "metric"]
    rows = (
        MetricScore.objects.filter(image__method_id__in=list(method_ids), metric__in=SHOWN_METRICS)
        .values(*group)
        .annotate(mean=Avg("value"), std=StdDev("value"), n=Count("id"))
        .order_by(*group)
    )
    summary: dict = {}
    for row in rows:
        key = (row["image__method_id"], row["image__concept_id"]) if by_concept else row["image__method_id"]
        summary.setdefault(key, {})[row["metric"]] = {"mean": row["mean"], "std": row["std"] or 0.0, "n": row["n"]}
    return summary


def human_metric_agreement(study: Study, results: StudyResults) -> list[dict[str, Any]]:
    """Per comparison (and over all of them): on decisive answers (after exclusions), how often the
    metric of the two images picks the same method as the question it measures."""
    table = results.table.without_raters(results.excluded_raters) if results.excluded_raters else results.table
    regular = Pair.objects.filter(study=study, kind=Pair.Kind.REGULAR)
    pair_images = {pk: (a, b) for pk, a, b in regular.values_list("id", "image_a_id", "image_b_id")}
    scores: dict[tuple[int, str], float] = {}
    score_rows = (
        MetricScore.objects.filter(metric__in=SHOWN_METRICS)
        .filter(Q(image_id__in=regular.values("image_a_id")) | Q(image_id__in=regular.values("image_b_id")))
        .order_by("created", "id")
        .values_list("image_id", "metric", "value")
    )
    for image, metric, value in score_rows:
        scores[(image, metric)] = value  # the newest score per image and metric wins
    groups = [(c.pk, str(c)) for c in results.comparisons] + [(None, "all comparisons")]
    out = []
    for question, metric in HUMAN_METRIC_CHECKS:
        rows = ~table.is_check & (table.question == QUESTION_IDS[question])
        pairs = table.pair[rows]
        side_a = np.array([scores.get((pair_images.get(p, (0, 0))[0], metric), np.nan) for p in pairs], float)
        side_b = np.array([scores.get((pair_images.get(p, (0, 0))[1], metric), np.nan) for p in pairs], float)
        for comparison, label in groups:
            keep = np.ones(pairs.size, bool) if comparison is None else table.comparison[rows] == comparison
            found = stats.metric_agreement(table.outcome[rows][keep], side_a[keep], side_b[keep])
            out.append({
                "comparison": comparison, "label": label, "question": question, "metric": metric,
                "n": found.n, "n_agree": found.n_agree, "share": found.share,
                "ci_low": found.share_ci.low, "ci_high": found.share_ci.high, "metric_ties": found.metric_ties,
            })  # fmt: skip
    return out


# ------------------------------------------------------------------------------- JSON form


def question_name(question_id: int) -> str:
    return QUESTIONS[int(question_id)]


def result_rows(results: StudyResults, analysis: stats.AnalysisResult, label: str) -> list[dict[str, Any]]:
    """The win-rate table: one flat row per comparison x question, with names, settings and exclusions."""
    names = {c.pk: (c.method_a.name, c.method_b.name) for c in results.comparisons}
    rules = json.dumps(dataclasses.asdict(results.rules) if results.rules else {}, sort_keys=True)
    rows = []
    for row in analysis.export_rows():
        method_a, method_b = names[row["comparison"]]
        rows.append({
            "analysis": label, "question_name": question_name(row["question"]),
            "method_a_name": method_a, "method_b_name": method_b, **row,
            "setting_exclusion_rules": rules, "excluded_by_hand": len(results.excluded_by_hand),
            "data_hash": results.data_hash,
        })  # fmt: skip
    return rows


def _analysis_json(results: StudyResults, analysis: stats.AnalysisResult, label: str, method_names) -> dict:
    reasons = results.exclusion_reasons()
    quality = []
    for row in analysis.rater_quality.rows():
        rater = int(row.pop("raters"))
        quality.append({"rater": pseudonym(rater), **row, "exclusion_reasons": reasons.get(rater, [])})
    bradley_terry = {}
    for question, fit in analysis.bradley_terry.items():
        ranking = [{**r, "method": method_names.get(r["method"], r["method"])} for r in fit.ranking()]
        bradley_terry[question_name(question)] = {
            "ranking": ranking, "left_advantage": fit.left_advantage, "left_advantage_ci": list(fit.left_advantage_ci),
            "tie_log_nu": fit.tie_log_nu, "ties": fit.ties, "ridge": fit.ridge, "converged": fit.converged,
            "failed_resamples": fit.failed_resamples,
        }  # fmt: skip
    agreement = {}
    for question, found in analysis.agreement.items():
        values = dataclasses.asdict(found)
        values["krippendorff_alpha_ci"] = list(found.krippendorff_alpha_ci)
        agreement[question_name(question)] = values
    return {
        "rows": result_rows(results, analysis, label),
        "bradley_terry": bradley_terry,
        "agreement": agreement,
        "rater_quality": quality,
        "study_left_share": analysis.rater_quality.study_left_share,
        "cohort_median_time_ms": analysis.rater_quality.cohort_median_time_ms,
        "excluded_raters": len(analysis.excluded_raters),
        "answer_rows": analysis.n_answers,
        "excluded_answer_rows": analysis.n_excluded_answers,
    }


def results_json(study: Study, results: StudyResults) -> dict[str, Any]:
    """The whole results as strict JSON (NaN becomes null); what snapshots freeze."""
    methods = {}
    for comparison in results.comparisons:
        methods[comparison.method_a_id] = comparison.method_a.name
        methods[comparison.method_b_id] = comparison.method_b.name
    metrics = method_metric_summary(methods)
    exclusions = results.sensitivity.exclusions
    return json_safe({
        "study": {"id": study.pk, "slug": study.slug, "title": study.title, "version": study.version},
        "data_hash": results.data_hash,
        "settings": results.settings_dict(),
        "answers": results.n_answers,
        "raters": results.n_raters,
        "exclusions": {
            "excluded_raters": len(results.excluded_raters),
            "excluded_by_hand": len(results.excluded_by_hand),
            "by_rule": exclusions.counts_by_rule() if exclusions else {},
            "raters": {pseudonym(r): reasons for r, reasons in results.exclusion_reasons().items()},
        },
        "comparisons": [
            {"id": c.pk, "label": str(c), "method_a": c.method_a.name, "method_b": c.method_b.name}
            for c in results.comparisons
        ],
        "metrics": {name: metrics.get(pk, {}) for pk, name in methods.items()},
        "with_exclusions": _analysis_json(results, results.primary, "with_exclusions", methods),
        "all_raters": _analysis_json(results, results.all_raters, "all_raters", methods),
        "human_metric_agreement": human_metric_agreement(study, results),
    })


# ------------------------------------------------------------------------------- snapshots


def create_snapshot(study: Study, label: str = "", overrides: Mapping[str, Any] | None = None) -> AnalysisSnapshot:
    """Freeze the current results (data hash, settings, numbers) so a paper can cite them."""
    results = study_results(study, overrides)
    frozen = results_json(study, results)
    return AnalysisSnapshot.objects.create(
        study=study,
        label=label,
        data_hash=results.data_hash,
        settings=frozen["settings"],
        results=frozen,
        answer_count=results.n_answers,
    )


def snapshot_matches_current_data(snapshot: AnalysisSnapshot) -> bool:
    """Whether the study's answers are still exactly those the snapshot was computed from."""
    return data_hash(answer_table(snapshot.study)) == snapshot.data_hash


# ------------------------------------------------------------------------------- exclusions by rule


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
