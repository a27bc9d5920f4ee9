"""Simulated studies with known truth, shaped like the paper's, to check intervals and tests.

Every pair judgment has a rater, a comparison, a subject and a prompt template. The log-odds that
method A wins a decided answer is the cell's mean plus a rater effect, a subject effect, a prompt
effect and a subject x prompt effect, each drawn per comparison and correlated across the three
questions (a rater who prefers A's text alignment tends to prefer its image too). Raters have
their own tie propensity, independent of their preference, so the true decisive win rate of a
cell is the population average E[expit(mean + effects)], computed by quadrature.

`simulate_study` returns an `AnswerTable` and the comparisons; `CrossedStudyDesign.true_win_rates`
is what a 95% interval should cover 95% of the time.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, special
from scipy import stats as sps

from studyapp.stats.analysis import AnalysisSettings, comparison_rows, resamples_for
from studyapp.stats.answers import AnswerTable, ComparisonSpec
from studyapp.stats.bootstrap import replicate_counts
from studyapp.stats.cells import build_cells


@dataclass(frozen=True)
class CrossedStudyDesign:
    """A study: raters x pairs per rater, comparisons x questions, subjects x prompt templates.

    Effect sizes are standard deviations on the log-odds of "A wins a decided answer". ``win_rates``
    holds the true decisive win rate of every comparison x question (row-major); empty means all
    50% (no method is better: the null).
    """

    n_raters: int = 200
    pairs_per_rater: int = 80
    n_comparisons: int = 15
    n_questions: int = 3
    n_subjects: int = 30
    n_prompts: int = 25
    rater_sd: float = 0.5
    subject_sd: float = 0.4
    prompt_sd: float = 0.4
    subject_prompt_sd: float = 0.2
    question_correlation: float = 0.7
    tie_rate: float = 0.25
    win_rates: tuple[float, ...] = field(default=())

    @property
    def n_cells(self) -> int:
        return self.n_comparisons * self.n_questions

    @property
    def logit_sd(self) -> float:
        return float(np.sqrt(self.rater_sd**2 + self.subject_sd**2 + self.prompt_sd**2 + self.subject_prompt_sd**2))

    def true_win_rates(self) -> np.ndarray:
        """(comparisons, questions) population decisive win rates."""
        if not self.win_rates:
            return np.full((self.n_comparisons, self.n_questions), 0.5)
        rates = np.asarray(self.win_rates, float)
        if rates.size != self.n_cells:
            raise ValueError(f"win_rates: expected {self.n_cells} values, got {rates.size}")
        return rates.reshape(self.n_comparisons, self.n_questions)

    def logit_means(self) -> np.ndarray:
        rates = self.true_win_rates()
        return np.array(_logit_means(tuple(rates.ravel()), self.logit_sd)).reshape(rates.shape)

    def comparisons(self) -> list[ComparisonSpec]:
        n_methods = 2
        while n_methods * (n_methods - 1) // 2 < self.n_comparisons:
            n_methods += 1
        pairs = list(itertools.combinations(range(n_methods), 2))[: self.n_comparisons]
        return [ComparisonSpec(i, a, b, f"M{a} vs M{b}") for i, (a, b) in enumerate(pairs)]


_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(80)


def population_win_rate(logit_mean: float, logit_sd: float) -> float:
    """E[expit(mean + sd Z)], Z ~ N(0, 1), by 80-point Gauss-Hermite quadrature."""
    return float(_WEIGHTS @ special.expit(logit_mean + logit_sd * _NODES) / _WEIGHTS.sum())


@functools.lru_cache(maxsize=64)
def _logit_means(rates: tuple[float, ...], logit_sd: float) -> tuple[float, ...]:
    unique = {r: optimize.brentq(lambda m, r=r: population_win_rate(m, logit_sd) - r, -20, 20) for r in set(rates)}
    return tuple(unique[r] for r in rates)


def simulate_study(design: CrossedStudyDesign, rng: np.random.Generator) -> tuple[AnswerTable, list[ComparisonSpec]]:
    """One study: every rater judges ``pairs_per_rater`` pairs of random comparison, subject and prompt."""
    n = design.n_raters * design.pairs_per_rater
    n_c, n_q = design.n_comparisons, design.n_questions
    rater = np.repeat(np.arange(design.n_raters), design.pairs_per_rater)
    comparison = rng.integers(0, n_c, n)
    subject = rng.integers(0, design.n_subjects, n)
    prompt = rng.integers(0, design.n_prompts, n)
    effects = _EffectDraw(rng, n_q, design.question_correlation)
    logit = (
        design.logit_means()[comparison]
        + effects.draw((design.n_raters, n_c), design.rater_sd)[rater, comparison]
        + effects.draw((design.n_subjects, n_c), design.subject_sd)[subject, comparison]
        + effects.draw((design.n_prompts, n_c), design.prompt_sd)[prompt, comparison]
        + effects.draw((design.n_subjects, design.n_prompts, n_c), design.subject_prompt_sd)[
            subject, prompt, comparison
        ]
    )  # (answers, questions)
    concentration = 8.0
    tie_propensity = rng.beta(design.tie_rate * concentration, (1 - design.tie_rate) * concentration, design.n_raters)
    a_wins = rng.random((n, n_q)) < special.expit(logit)
    tie = rng.random((n, n_q)) < tie_propensity[rater, None]
    outcome = np.where(tie, 0, np.where(a_wins, 1, -1))
    specs = design.comparisons()
    tile = lambda values: np.tile(values, n_q)  # noqa: E731  (question-major rows)
    table = AnswerTable(
        comparison=tile(comparison),
        question=np.repeat(np.arange(n_q), n),
        rater=tile(rater),
        subject=tile(subject),
        prompt=tile(prompt),
        pair=tile(np.arange(n)),
        outcome=outcome.T.ravel(),
        left_is_a=tile(rng.random(n) < 0.5),
        time_ms=np.full(n * n_q, np.nan),
        is_gold=np.zeros(n * n_q, bool),
        is_attention=np.zeros(n * n_q, bool),
        check_passed=np.zeros(n * n_q, bool),
    )
    return table, specs


@dataclass(frozen=True)
class _EffectDraw:
    """Normal effects, one per level and comparison, correlated across questions."""

    rng: np.random.Generator
    n_questions: int
    correlation: float

    def draw(self, shape: tuple[int, ...], sd: float) -> np.ndarray:
        shared = self.rng.normal(0, sd, (*shape, 1))
        own = self.rng.normal(0, sd, (*shape, self.n_questions))
        return np.sqrt(self.correlation) * shared + np.sqrt(1 - self.correlation) * own


@dataclass(frozen=True, eq=False)
class SimulationSummary:
    """Per study x cell: estimates, marginal and adjusted intervals, p-values and marks, and the truth."""

    truth: np.ndarray  # (cells,)
    estimate: np.ndarray  # (studies, cells)
    low: np.ndarray
    high: np.ndarray
    adjusted_low: np.ndarray
    adjusted_high: np.ndarray
    pvalue: np.ndarray
    marked: np.ndarray  # bool
    confidence_level: float

    @property
    def n_studies(self) -> int:
        return self.estimate.shape[0]

    def coverage(self) -> np.ndarray:
        """Share of studies whose marginal interval covers the truth, per cell."""
        return ((self.low <= self.truth) & (self.truth <= self.high)).mean(axis=0)

    def mean_width(self) -> np.ndarray:
        return (self.high - self.low).mean(axis=0)

    def ideal_width(self) -> np.ndarray:
        """2 z sd of the estimate over the studies: the width of an interval that knew the variance."""
        z = sps.norm.ppf(0.5 + self.confidence_level / 2)
        return 2 * z * self.estimate.std(axis=0, ddof=1)

    def width_ratio(self) -> np.ndarray:
        return self.mean_width() / self.ideal_width()

    def family_wise_rate(self) -> float:
        """Share of studies with at least one mark on a cell whose true win rate is 1/2."""
        null = self.truth == 0.5
        return float(self.marked[:, null].any(axis=1).mean())

    def rejection_rate(self, level: float) -> float:
        """Share of true-null cells with p below ``level`` (before adjustment)."""
        null = self.truth == 0.5
        return float((self.pvalue[:, null] < level).mean())

    def disagreements(self) -> int:
        """Cells (over all studies) where the mark and the adjusted interval disagree about 1/2."""
        return self.marked_but_covering() + self.unmarked_but_excluding()

    def marked_but_covering(self) -> int:
        """Marked cells whose adjusted interval contains 1/2 (the mark contradicts the interval)."""
        excludes = (self.adjusted_low > 0.5) | (self.adjusted_high < 0.5)
        return int((self.marked & ~excludes).sum())

    def unmarked_but_excluding(self) -> int:
        excludes = (self.adjusted_low > 0.5) | (self.adjusted_high < 0.5)
        return int((~self.marked & excludes).sum())


def run_studies(design: CrossedStudyDesign, n_studies: int, settings=None, seed: int = 0) -> SimulationSummary:
    """Simulate ``n_studies`` studies and analyse each win-rate table as the results page does."""
    settings = settings or AnalysisSettings()
    rng = np.random.default_rng(seed)
    fields = ("estimate", "low", "high", "adjusted_low", "adjusted_high", "pvalue", "marked")
    collected: dict[str, list] = {name: [] for name in fields}
    for _ in range(n_studies):
        table, specs = simulate_study(design, rng)
        cells = build_cells(table, specs, None)
        n_resamples = resamples_for(settings, cells.n_cells)
        replicates = None
        if settings.procedure == "bootstrap":
            replicates = replicate_counts(cells, n_resamples, rng, settings.random_factors, settings.weights)
        rows = comparison_rows(cells, settings, n_resamples, replicates)
        collected["estimate"].append([r.estimate.win_rate for r in rows])
        collected["low"].append([r.estimate.win_rate_ci.low for r in rows])
        collected["high"].append([r.estimate.win_rate_ci.high for r in rows])
        collected["adjusted_low"].append([r.adjusted_ci.low for r in rows])
        collected["adjusted_high"].append([r.adjusted_ci.high for r in rows])
        collected["pvalue"].append([r.pvalue for r in rows])
        collected["marked"].append([bool(r.mark) for r in rows])
    arrays = {name: np.array(values) for name, values in collected.items()}
    return SimulationSummary(design.true_win_rates().ravel(), **arrays, confidence_level=settings.confidence_level)
