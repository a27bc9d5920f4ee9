"""The whole results computation: every cell's win rate, interval, test and mark, then Bradley-Terry,
agreement and rater quality, with and without the excluded raters.

One procedure (``AnalysisSettings.procedure``) gives each cell its marginal interval, its p-value
and, after the multiplicity adjustment, its adjusted interval and its mark, so they cannot
disagree: a cell is marked exactly when its adjusted interval excludes 1/2.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from studyapp.stats import bootstrap
from studyapp.stats.agreement import AgreementResult, agreement_by_question
from studyapp.stats.answers import FACTORS, AnswerTable, ComparisonSpec
from studyapp.stats.bradley_terry import TIE_CHOICES, BradleyTerryResult, bt_results
from studyapp.stats.cells import Cells, build_cells
from studyapp.stats.intervals import ConfidenceInterval
from studyapp.stats.rater_quality import (
    ExclusionResult,
    ExclusionRules,
    RaterQuality,
    apply_exclusion_rules,
    rater_quality,
)
from studyapp.stats.significance import (
    MULTIPLICITY_CHOICES,
    bonferroni,
    bonferroni_levels,
    holm,
    holm_levels,
    sign_test_pvalues,
    significance_mark,
)
from studyapp.stats.validation import PROCEDURES, check_choice, check_level, check_random_factors
from studyapp.stats.win_rates import MIN_CLUSTERS, PLURAL, WinRateResult, estimate_win_rates

MAX_RESAMPLES = 100_000


@dataclass(frozen=True)
class AnalysisSettings:
    """Everything that changes the numbers; echoed in every result and export.

    ``procedure``: 'crossed' (default) or 'bootstrap' (see `win_rates`). ``random_factors``: which
    of rater, subject and prompt are random; a factor left out is fixed ("these 30 subjects are the
    population"). ``multiplicity``: 'holm' (adjusted intervals at each test's Holm level, compatible
    with the marks) or 'bonferroni' (simultaneous intervals at 1 - alpha / m). ``n_resamples`` is
    used by the bootstrap and by the agreement interval; it is raised for the bootstrap until its
    smallest p-value, 2 / (B + 1), is below alpha / m.
    """

    procedure: str = "crossed"
    random_factors: tuple[str, ...] = FACTORS
    multiplicity: str = "holm"
    n_resamples: int = 2000
    confidence_level: float = 0.95
    seed: int | None = 0
    alpha: float = 0.05
    weights: str = "multinomial"
    ties: str = "half"
    ridge: float = 0.01
    questions: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        check_choice("procedure", self.procedure, PROCEDURES)
        check_choice("multiplicity", self.multiplicity, MULTIPLICITY_CHOICES)
        check_choice("weights", self.weights, bootstrap.WEIGHT_CHOICES)
        check_choice("ties", self.ties, TIE_CHOICES)
        object.__setattr__(self, "random_factors", check_random_factors(self.random_factors))
        check_level(self.confidence_level)
        if isinstance(self.n_resamples, bool) or int(self.n_resamples) != self.n_resamples:
            raise ValueError(f"n_resamples: expected an integer, got {self.n_resamples!r}")
        if not 1 <= int(self.n_resamples) <= MAX_RESAMPLES:
            raise ValueError(
                f"n_resamples: expected 1 to {MAX_RESAMPLES} (the bootstrap and the agreement interval resample; "
                f"without resamples there is no interval to show), got {self.n_resamples!r}"
            )
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha: expected a number in (0, 1), got {self.alpha!r}")
        if not self.ridge > 0:
            raise ValueError(f"ridge: expected a positive number, got {self.ridge!r}")
        if self.questions is not None:
            object.__setattr__(self, "questions", tuple(int(q) for q in self.questions))

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def fixed_factors(self) -> tuple[str, ...]:
        return tuple(f for f in FACTORS if f not in self.random_factors)


def resamples_for(settings: AnalysisSettings, n_tests: int) -> int:
    """Bootstrap replicates used: at least enough that 2 / (B + 1) < alpha / m."""
    if settings.procedure != "bootstrap":
        return int(settings.n_resamples)
    needed = int(np.floor(2 * max(n_tests, 1) / settings.alpha))
    while 2 / (needed + 1) >= settings.alpha / max(n_tests, 1):
        needed += 1
    return max(int(settings.n_resamples), needed)


def describe_procedure(settings: AnalysisSettings, n_tests: int, n_resamples: int) -> str:
    """The legend: which procedure, which factors are random, which adjustment; names what was used."""
    random = ", ".join(PLURAL[f] for f in settings.random_factors) or "none"
    fixed = ", ".join(PLURAL[f] for f in settings.fixed_factors)
    factors = f"random factors: {random}" + (f"; fixed (their levels are the population): {fixed}" if fixed else "")
    level = f"{settings.confidence_level:.0%}"
    if settings.procedure == "crossed":
        interval = (
            f"{level} interval from the crossed random-factor variance (multiway clustering with the overlap "
            f"terms removed) and a t reference with Satterthwaite degrees of freedom"
        )
    else:
        interval = (
            f"{level} percentile interval of the pigeonhole bootstrap ({n_resamples} resamples of "
            f"{random}, {settings.weights} weights); p-values cannot fall below 2 / (B + 1) = "
            f"{2 / (n_resamples + 1):.2g}"
        )
    if settings.multiplicity == "holm":
        adjust = (
            f"marks: Holm over {n_tests} tests at α = {settings.alpha:g}; adjusted interval: each test's interval at "
            f"the level Holm tests it at (it excludes 50% exactly when the mark is shown)"
        )
    else:
        adjust = (
            f"marks: Bonferroni over {n_tests} tests at α = {settings.alpha:g}; adjusted interval: simultaneous "
            f"{1 - settings.alpha:.0%} (each at {1 - settings.alpha / max(n_tests, 1):.4%})"
        )
    return (
        f"Decisive win rate of A (ties left out) with its {interval}; {factors}; {adjust}. A cell with fewer "
        f"than {MIN_CLUSTERS} levels of a random factor is not tested."
    )


@dataclass(frozen=True)
class ComparisonRow:
    """One cell of the results table (a comparison x question)."""

    comparison: int
    label: str
    method_a: int
    method_b: int
    question: int
    estimate: WinRateResult
    wilson_ci: ConfidenceInterval  # naive: answers treated as independent
    sign_test_pvalue: float  # naive reference
    pvalue: float  # of the procedure; NaN when not tested
    adjusted_pvalue: float  # over the declared family; NaN outside it or when not tested
    adjusted_ci: ConfidenceInterval  # at adjusted_level; NaN outside the family or when not tested
    adjusted_level: float
    in_family: bool
    mark: str
    note: str  # why there is no test ("not tested: too few subjects ..."), else ""

    @property
    def pvalue_is_floor(self) -> bool:
        """The procedure's smallest attainable p-value: show it as "p < floor"."""
        floor = self.estimate.pvalue_floor
        return bool(floor > 0 and self.pvalue <= floor)

    def as_dict(self) -> dict[str, Any]:
        e = self.estimate
        return {
            "comparison": self.comparison,
            "label": self.label,
            "method_a": self.method_a,
            "method_b": self.method_b,
            "question": self.question,
            "wins": e.wins,
            "ties": e.ties,
            "losses": e.losses,
            "n": e.n,
            "n_decisive": e.n_decisive,
            "win_rate": e.win_rate,
            "ci_low": e.win_rate_ci.low,
            "ci_high": e.win_rate_ci.high,
            "interval_method": e.interval_method,
            "adjusted_ci_low": self.adjusted_ci.low,
            "adjusted_ci_high": self.adjusted_ci.high,
            "adjusted_level": self.adjusted_level,
            "standard_error": e.standard_error,
            "df": e.df,
            "wilson_low": self.wilson_ci.low,
            "wilson_high": self.wilson_ci.high,
            "tie_rate": e.tie_rate,
            "tie_rate_ci_low": e.tie_rate_ci.low,
            "tie_rate_ci_high": e.tie_rate_ci.high,
            "tie_half_score": e.tie_half_score,
            "tie_half_score_ci_low": e.tie_half_score_ci.low,
            "tie_half_score_ci_high": e.tie_half_score_ci.high,
            "design_effect": e.design_effect,
            "n_raters": e.n_raters,
            "n_subjects": e.n_subjects,
            "n_prompts": e.n_prompts,
            "sign_test_p": self.sign_test_pvalue,
            "p": self.pvalue,
            "p_floor": e.pvalue_floor,
            "adjusted_p": self.adjusted_pvalue,
            "in_family": self.in_family,
            "mark": self.mark,
            "testable": e.testable,
            "note": self.note,
            "warnings": "; ".join(e.warnings),
        }


@dataclass(frozen=True)
class AnalysisResult:
    settings: AnalysisSettings
    rows: tuple[ComparisonRow, ...]
    bradley_terry: Mapping[int, BradleyTerryResult]
    agreement: Mapping[int, AgreementResult]
    rater_quality: RaterQuality
    excluded_raters: tuple[int, ...]
    n_answers: int  # rows analysed (after exclusions, checks included)
    n_excluded_answers: int
    procedure: str  # the legend: the procedure actually used, in words
    n_tests: int  # the declared family
    n_resamples: int  # used (raised for the bootstrap when needed)
    warnings: tuple[str, ...]

    def export_rows(self) -> list[dict[str, Any]]:
        """One flat dict per comparison x question with the settings and exclusions, for CSV / JSON."""
        extra = {f"setting_{k}": v for k, v in self.settings.as_dict().items()}
        extra["setting_random_factors"] = "+".join(self.settings.random_factors) or "none"
        extra["resamples_used"] = self.n_resamples
        extra["excluded_raters"] = len(self.excluded_raters)
        extra["excluded_answers"] = self.n_excluded_answers
        return [{**row.as_dict(), **extra} for row in self.rows]

    def row(self, comparison: int, question: int) -> ComparisonRow:
        for row in self.rows:
            if row.comparison == comparison and row.question == question:
                return row
        raise KeyError(f"no row for comparison {comparison}, question {question}")


def analyse(
    table: AnswerTable,
    comparisons: Sequence[ComparisonSpec],
    settings: AnalysisSettings = AnalysisSettings(),
    excluded_raters: Iterable[int] = (),
) -> AnalysisResult:
    """Everything the results page shows. Win rates and Bradley-Terry use ``settings.procedure``
    (the bootstrap draws one set of replicates for both); agreement uses overlap pairs per question;
    rater quality is computed on the table after exclusions."""
    excluded = tuple(sorted({int(r) for r in excluded_raters}))
    kept = table.without_raters(excluded) if excluded else table
    cells = build_cells(kept, comparisons, settings.questions)
    n_tests = sum(cells.spec(i).in_family for i in range(cells.n_cells))
    n_resamples = resamples_for(settings, n_tests)
    replicates = None
    if settings.procedure == "bootstrap":
        rng = np.random.default_rng(settings.seed)
        replicates = bootstrap.replicate_counts(cells, n_resamples, rng, settings.random_factors, settings.weights)
    rows = comparison_rows(cells, settings, n_resamples, replicates)
    bt = bt_results(
        cells,
        procedure=settings.procedure,
        random_factors=settings.random_factors,
        ties=settings.ties,
        ridge=settings.ridge,
        confidence_level=settings.confidence_level,
        n_resamples=n_resamples,
        seed=settings.seed,
        replicates=replicates,
    )
    agreements = agreement_by_question(
        kept,
        questions=cells.questions.tolist(),
        comparisons=[c.id for c in comparisons],
        n_resamples=n_resamples,
        confidence_level=settings.confidence_level,
        seed=settings.seed,
    )
    return AnalysisResult(
        settings,
        rows,
        bt,
        agreements,
        rater_quality(kept),
        excluded,
        len(kept),
        len(table) - len(kept),
        describe_procedure(settings, n_tests, n_resamples),
        n_tests,
        n_resamples,
        _study_warnings(settings, n_tests, n_resamples),
    )


def comparison_rows(
    cells: Cells, settings: AnalysisSettings, n_resamples: int, replicates: np.ndarray | None = None
) -> tuple[ComparisonRow, ...]:
    """The win-rate table: every cell's estimate, marginal and adjusted intervals, p-values and mark."""
    estimates, inference = estimate_win_rates(
        cells,
        procedure=settings.procedure,
        random_factors=settings.random_factors,
        confidence_level=settings.confidence_level,
        n_resamples=n_resamples,
        seed=settings.seed,
        weights=settings.weights,
        replicates=replicates,
    )
    in_family = np.array([cells.spec(i).in_family for i in range(cells.n_cells)], bool)
    pvalues = inference.pvalues()
    adjusted, levels = _adjust(pvalues, in_family, settings)
    shown = ~np.isnan(adjusted)
    adjusted_low, adjusted_high = inference.interval(np.where(shown, 1 - levels, 0.5))
    adjusted_low, adjusted_high = np.where(shown, adjusted_low, np.nan), np.where(shown, adjusted_high, np.nan)
    sign_pvalues = sign_test_pvalues([e.wins for e in estimates], [e.losses for e in estimates])
    return tuple(
        ComparisonRow(
            comparison=cells.spec(i).id,
            label=cells.spec(i).label,
            method_a=cells.spec(i).method_a,
            method_b=cells.spec(i).method_b,
            question=e.question,
            estimate=e,
            wilson_ci=e.wilson_ci(),
            sign_test_pvalue=float(sign_pvalues[i]),
            pvalue=float(pvalues[i]),
            adjusted_pvalue=float(adjusted[i]),
            adjusted_ci=ConfidenceInterval(float(adjusted_low[i]), float(adjusted_high[i])),
            adjusted_level=float(1 - levels[i]) if shown[i] else float("nan"),
            in_family=bool(in_family[i]),
            mark=significance_mark(adjusted[i], settings.alpha),
            note=_note(e),
        )
        for i, e in enumerate(estimates)
    )


def _adjust(pvalues: np.ndarray, in_family: np.ndarray, settings: AnalysisSettings):
    """Adjusted p-values and test levels over the family; a declared test that cannot run counts as p = 1."""
    family = np.where(in_family, np.where(np.isnan(pvalues), 1.0, pvalues), np.nan)
    if settings.multiplicity == "holm":
        adjusted, levels = holm(family), holm_levels(family, settings.alpha)
    else:
        adjusted, levels = bonferroni(family), bonferroni_levels(family, settings.alpha)
    untested = np.isnan(pvalues)
    return np.where(untested, np.nan, adjusted), np.where(untested, np.nan, levels)


def _note(estimate: WinRateResult) -> str:
    if estimate.testable:
        return ""
    reasons = [w for w in estimate.warnings if w.startswith("too few") or w == "no decided answers"]
    return "not tested: " + ("; ".join(reasons) or "no decided answers")


def _study_warnings(settings: AnalysisSettings, n_tests: int, n_resamples: int) -> tuple[str, ...]:
    found = []
    if n_resamples > settings.n_resamples:
        found.append(
            f"bootstrap resamples raised from {settings.n_resamples} to {n_resamples} so that the smallest p-value "
            f"2 / (B + 1) is below α / m = {settings.alpha / max(n_tests, 1):.2g}"
        )
    if settings.procedure == "bootstrap" and n_tests:
        floor = min(1.0, n_tests * 2 / (n_resamples + 1))
        if floor >= settings.alpha / 5:
            found.append(
                f"with {n_resamples} resamples no adjusted p-value can fall below {floor:.2g}, so '**' and '***' "
                f"cannot appear; the crossed procedure has no such floor"
            )
    return tuple(found)


@dataclass(frozen=True)
class SensitivityResult:
    """Results with every rater, and with the excluded raters removed."""

    all_raters: AnalysisResult
    with_exclusions: AnalysisResult
    exclusions: ExclusionResult | None
    excluded_raters: tuple[int, ...]


def analyse_with_and_without_exclusions(
    table: AnswerTable,
    comparisons: Sequence[ComparisonSpec],
    settings: AnalysisSettings = AnalysisSettings(),
    *,
    rules: ExclusionRules | None = None,
    excluded_raters: Iterable[int] = (),
) -> SensitivityResult:
    """Runs `analyse` twice: on everyone, and without raters excluded by ``rules`` or by hand."""
    exclusions = apply_exclusion_rules(rater_quality(table), rules) if rules is not None else None
    excluded = {int(r) for r in excluded_raters} | set(exclusions.excluded_raters if exclusions else ())
    everyone = analyse(table, comparisons, settings)
    reduced = analyse(table, comparisons, settings, excluded_raters=excluded)
    return SensitivityResult(everyone, reduced, exclusions, tuple(sorted(excluded)))
