"""Win rates per comparison x question: counts, estimates, one interval procedure and its p-value.

The decisive win rate ŵ = W / (W + L) is a ratio estimator; its interval, its p-value against 1/2
and (after Holm) its mark all come from one procedure, so they cannot disagree:

- ``procedure="crossed"`` (default): raters, subjects and prompts are crossed random factors (those
  declared fixed are not); the variance comes from `crossed_variance` and the reference is a t with
  Satterthwaite degrees of freedom.
- ``procedure="bootstrap"``: the pigeonhole bootstrap over the same random factors (`bootstrap`).

Degenerate cells say so. A cell where a random factor has fewer than `MIN_CLUSTERS` levels with a
decided answer is not tested. Where the chosen interval is undefined or has zero width (one
rater, all answers the same way) it falls back to the Wilson interval on the effective number of
clusters, the fewest levels of any random factor, and its p-value to the score test that
interval inverts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from studyapp.stats import bootstrap
from studyapp.stats.answers import A_WINS, FACTORS, TIE, AnswerTable, ComparisonSpec
from studyapp.stats.cells import Cells, build_cells
from studyapp.stats.crossed_variance import ClusterLayout, RatioVariance, ratio_variances
from studyapp.stats.intervals import ConfidenceInterval, score_pvalue, t_interval, t_pvalue, wilson_interval
from studyapp.stats.validation import PROCEDURES, check_choice, check_level, check_random_factors

MIN_CLUSTERS = 3  # levels of every random factor a cell needs before it is tested
PLURAL = {"rater": "raters", "subject": "subjects", "prompt": "prompts"}
PROCEDURE_NAMES = {
    "crossed": "crossed random-factor t",
    "bootstrap": "pigeonhole bootstrap",
    "wilson": "Wilson on effective clusters",
}


@dataclass(frozen=True)
class WinRateResult:
    """One comparison x question: counts, point estimates from the full data, and intervals.

    ``interval_method`` names what produced ``win_rate_ci`` ('crossed', 'bootstrap' or, as a
    fallback, 'wilson'); ``pvalue`` tests ŵ = 1/2 with the same procedure (NaN when the cell is not
    testable); ``pvalue_floor`` is the smallest p the procedure can give (0 when analytic).
    ``variance_components`` are the contributions of each factor set to the variance of ŵ;
    ``answer_covariances`` the covariance of two decided answers sharing exactly that set (for
    `planning`).
    """

    comparison: int
    question: int
    wins: int
    ties: int
    losses: int
    win_rate: float
    win_rate_ci: ConfidenceInterval
    tie_rate: float
    tie_rate_ci: ConfidenceInterval
    tie_half_score: float
    tie_half_score_ci: ConfidenceInterval
    standard_error: float
    df: float
    pvalue: float
    pvalue_floor: float
    interval_method: str
    effective_clusters: int
    design_effect: float  # variance of ŵ / binomial variance ŵ(1 - ŵ)/(W + L)
    n_raters: int
    n_subjects: int
    n_prompts: int
    testable: bool
    warnings: tuple[str, ...]
    undefined_resamples: int
    procedure: str
    random_factors: tuple[str, ...]
    n_resamples: int
    confidence_level: float
    seed: int | None
    variance_components: Mapping[str, float] = field(default_factory=dict)
    answer_covariances: Mapping[str, float] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return self.wins + self.ties + self.losses

    @property
    def n_decisive(self) -> int:
        return self.wins + self.losses

    def wilson_ci(self, confidence_level: float | None = None) -> ConfidenceInterval:
        """The naive interval: treats every decisive answer as independent."""
        return wilson_interval(self.wins, self.n_decisive, confidence_level or self.confidence_level)


@dataclass(frozen=True, eq=False)
class WinRateInference:
    """Per-cell pieces that give the decisive win-rate interval at any level, and its p-value."""

    estimate: np.ndarray
    standard_error: np.ndarray
    df: np.ndarray
    fallback: np.ndarray  # Wilson on effective clusters instead of the procedure
    effective_clusters: np.ndarray
    testable: np.ndarray
    replicates: np.ndarray | None  # (B, cells) bootstrap win rates, or None for the crossed procedure

    def interval(self, level) -> tuple[np.ndarray, np.ndarray]:
        level = np.broadcast_to(np.asarray(level, float), self.estimate.shape)
        if self.replicates is None:
            low, high = t_interval(self.estimate, self.standard_error, self.df, level)
        else:
            low, high = bootstrap.order_statistic_interval(self.replicates, level)
        wilson = wilson_interval(self.estimate * self.effective_clusters, self.effective_clusters, level)
        return np.where(self.fallback, wilson.low, low), np.where(self.fallback, wilson.high, high)

    def pvalues(self) -> np.ndarray:
        if self.replicates is None:
            p = t_pvalue(self.estimate, self.standard_error, self.df)
        else:
            p = bootstrap.bootstrap_pvalue(self.replicates)
        p = np.where(self.fallback, score_pvalue(self.estimate, self.effective_clusters), p)
        return np.where(self.testable, p, np.nan)

    def pvalue_floors(self) -> np.ndarray:
        if self.replicates is None:
            return np.zeros(self.estimate.shape)
        return np.where(self.fallback, 0.0, bootstrap.pvalue_floor(self.replicates))


@dataclass(frozen=True, eq=False)
class CellEstimates:
    """Everything per cell, as arrays: counts, the three ratios, the win-rate inference, clusters."""

    counts: np.ndarray  # (cells, 3): W, T, L
    win: RatioVariance
    tie_rate: RatioVariance
    tie_half_score: RatioVariance
    inference: WinRateInference
    tie_rate_ci: tuple[np.ndarray, np.ndarray]
    tie_half_score_ci: tuple[np.ndarray, np.ndarray]
    clusters: Mapping[str, np.ndarray]  # factor -> levels with a decided answer, per cell
    undefined_resamples: np.ndarray

    def design_effect(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            binomial = self.win.estimate * (1 - self.win.estimate) / self.win.denominator
            return np.where(binomial > 0, self.win.variance / binomial, np.nan)


def estimate_cells(
    cell: np.ndarray,
    outcome: np.ndarray,
    factor_codes: Mapping[str, np.ndarray],
    n_cells: int,
    *,
    random_factors: tuple[str, ...],
    confidence_level: float,
    replicates: np.ndarray | None = None,
) -> CellEstimates:
    """The core of every win-rate table: rows (cell, outcome, factor levels) to per-cell arrays.

    ``replicates`` (bootstrap counts per cell, shape (B, cells, 2, 3)) select the bootstrap procedure.
    """
    counts = np.bincount(cell * 3 + 1 - outcome.astype(np.int64), minlength=n_cells * 3).reshape(n_cells, 3)
    layout = ClusterLayout.build(cell, factor_codes, n_cells)
    a_won, tie = (outcome == A_WINS).astype(float), (outcome == TIE).astype(float)
    (win,) = ratio_variances(layout, [a_won], 1.0 - tie, random_factors)
    clusters = win.clusters  # levels with a decided answer, per factor and cell
    n_decisive = counts[:, 0] + counts[:, 2]
    effective = _effective_clusters(clusters, random_factors, n_decisive)
    testable = np.all([clusters[f] >= MIN_CLUSTERS for f in random_factors] or [n_decisive >= 0], axis=0)
    testable &= n_decisive > 0
    tie_rate, tie_half = ratio_variances(layout, [tie, a_won + tie / 2], np.ones(outcome.size), random_factors)
    boot = _rates(replicates.sum(axis=2).astype(np.float64)) if replicates is not None else None
    inference = _win_rate_inference(win, boot, effective, testable)
    return CellEstimates(
        counts,
        win,
        tie_rate,
        tie_half,
        inference,
        _other_interval(tie_rate, None if boot is None else boot["tie_rate"], confidence_level),
        _other_interval(tie_half, None if boot is None else boot["tie_half_score"], confidence_level),
        clusters,
        np.isnan(boot["win_rate"]).sum(axis=0) if boot is not None else np.zeros(n_cells, np.int64),
    )


def estimate_win_rates(
    cells: Cells,
    *,
    procedure: str,
    random_factors: tuple[str, ...],
    confidence_level: float,
    n_resamples: int,
    seed: int | None,
    weights: str = "multinomial",
    replicates: np.ndarray | None = None,
) -> tuple[list[WinRateResult], WinRateInference]:
    """Results for every cell of ``cells``; for the bootstrap, ``replicates`` are drawn when not given."""
    if procedure == "bootstrap" and replicates is None:
        rng = np.random.default_rng(seed)
        replicates = bootstrap.replicate_counts(cells, n_resamples, rng, random_factors, weights)
    found = estimate_cells(
        cells.cell,
        cells.outcome,
        cells.factor_codes,
        cells.n_cells,
        random_factors=random_factors,
        confidence_level=confidence_level,
        replicates=replicates if procedure == "bootstrap" else None,
    )
    settings = {
        "procedure": procedure,
        "random_factors": random_factors,
        "n_resamples": int(n_resamples),
        "confidence_level": confidence_level,
        "seed": seed,
    }
    inference = found.inference
    arrays = {
        "interval": inference.interval(confidence_level),
        "pvalue": inference.pvalues(),
        "floor": inference.pvalue_floors(),
        "design_effect": found.design_effect(),
    }
    return [_cell_result(cells, found, arrays, index, settings) for index in range(cells.n_cells)], inference


def _cell_result(cells: Cells, found: CellEstimates, arrays: dict, index: int, settings: dict) -> WinRateResult:
    inference, (low, high) = found.inference, arrays["interval"]
    wins, ties, losses = (int(v) for v in found.counts[index])
    warnings = _warnings(
        index,
        settings["procedure"],
        inference,
        found.clusters,
        settings["random_factors"],
        found.undefined_resamples,
        settings["n_resamples"],
    )
    return WinRateResult(
        comparison=cells.spec(index).id,
        question=cells.question(index),
        wins=wins,
        ties=ties,
        losses=losses,
        win_rate=float(found.win.estimate[index]),
        win_rate_ci=ConfidenceInterval(float(low[index]), float(high[index])),
        tie_rate=float(found.tie_rate.estimate[index]),
        tie_rate_ci=_pick(found.tie_rate_ci, index),
        tie_half_score=float(found.tie_half_score.estimate[index]),
        tie_half_score_ci=_pick(found.tie_half_score_ci, index),
        standard_error=float(inference.standard_error[index]),
        df=float(found.win.df[index]),
        pvalue=float(arrays["pvalue"][index]),
        pvalue_floor=float(arrays["floor"][index]),
        interval_method="wilson" if inference.fallback[index] else settings["procedure"],
        effective_clusters=int(inference.effective_clusters[index]),
        design_effect=float(arrays["design_effect"][index]),
        n_raters=int(found.clusters["rater"][index]),
        n_subjects=int(found.clusters["subject"][index]),
        n_prompts=int(found.clusters["prompt"][index]),
        testable=bool(inference.testable[index]),
        warnings=warnings,
        undefined_resamples=int(found.undefined_resamples[index]),
        variance_components={name: float(v[index]) for name, v in found.win.components.items()},
        answer_covariances={name: float(v[index]) for name, v in found.win.covariances.items()},
        **settings,
    )


def _pick(interval: tuple[np.ndarray, np.ndarray], index: int) -> ConfidenceInterval:
    return ConfidenceInterval(float(interval[0][index]), float(interval[1][index]))


def _effective_clusters(clusters: Mapping[str, np.ndarray], random_factors, n_decisive: np.ndarray) -> np.ndarray:
    fewest = np.min([clusters[f] for f in random_factors], axis=0) if random_factors else n_decisive
    return np.minimum(fewest, n_decisive).astype(np.int64)


def _win_rate_inference(win, boot_rates, effective, testable) -> WinRateInference:
    se = np.sqrt(win.variance)
    if boot_rates is None:
        degenerate = ~(np.isfinite(se) & (se > 0)) | ~win.estimable
        replicates = None
    else:
        replicates = boot_rates["win_rate"]
        with np.errstate(invalid="ignore"):
            spread = np.nanmax(replicates, axis=0, initial=-np.inf) - np.nanmin(replicates, axis=0, initial=np.inf)
        defined = bootstrap.defined_count(replicates)
        degenerate = ~(spread > 0) | (defined < 0.5 * max(replicates.shape[0], 1))
        with np.errstate(invalid="ignore"), bootstrap.quiet_nan_warnings():
            se = np.nanstd(replicates, axis=0, ddof=1) if replicates.shape[0] > 1 else np.full(se.shape, np.nan)
    fallback = (degenerate | ~testable) & (win.denominator > 0)
    return WinRateInference(win.estimate, se, win.df, fallback, effective, testable, replicates)


def _other_interval(result: RatioVariance, boot: np.ndarray | None, confidence_level: float):
    """Interval for the tie rate or the tie-as-half score, with the same fallback rule."""
    if boot is None:
        low, high = t_interval(result.estimate, np.sqrt(result.variance), result.df, confidence_level)
        degenerate = ~(high > low) | ~result.estimable
    else:
        low, high = bootstrap.order_statistic_interval(boot, confidence_level)
        degenerate = ~(high > low)
    fewest = np.min([result.clusters[f] for f in result.random], axis=0) if result.random else result.denominator
    n_effective = np.minimum(fewest, result.denominator)
    wilson = wilson_interval(result.estimate * n_effective, n_effective, confidence_level)
    return np.where(degenerate, wilson.low, low), np.where(degenerate, wilson.high, high)


def _warnings(index, procedure, inference, clusters, random_factors, undefined, n_resamples) -> tuple[str, ...]:
    if np.isnan(inference.estimate[index]):
        return ("no decided answers",)
    found = []
    for factor in random_factors:
        count = int(clusters[factor][index])
        if count < MIN_CLUSTERS:
            found.append(f"too few {PLURAL[factor]} to test: {count} with a decided answer, {MIN_CLUSTERS} needed")
    effective = int(inference.effective_clusters[index])
    wilson = f"the Wilson interval on {effective} effective cluster{'s' if effective != 1 else ''}"
    if not inference.testable[index]:
        found.append(f"interval shown: {wilson}")
    elif inference.fallback[index]:
        found.append(f"the {PROCEDURE_NAMES[procedure]} interval is undefined or has zero width; shown: {wilson}")
    if undefined[index]:
        found.append(f"{int(undefined[index])} of {n_resamples} resamples had no decided answer and were left out")
    return tuple(found)


def _rates(wtl: np.ndarray) -> dict[str, np.ndarray]:
    """Win rate, tie rate and tie-as-half score from (..., 3) W / T / L counts."""
    wins, ties, losses = wtl[..., 0], wtl[..., 1], wtl[..., 2]
    total = wins + ties + losses
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "win_rate": np.where(wins + losses > 0, wins / (wins + losses), np.nan),
            "tie_rate": np.where(total > 0, ties / total, np.nan),
            "tie_half_score": np.where(total > 0, (wins + ties / 2) / total, np.nan),
        }


def win_rate(
    table: AnswerTable,
    comparison: int,
    question: int,
    *,
    procedure: str = "crossed",
    random_factors=FACTORS,
    confidence_level: float = 0.95,
    n_resamples: int = 2000,
    seed: int | None = 0,
    weights: str = "multinomial",
) -> WinRateResult:
    """Wins / ties / losses and rates for one comparison and question, with intervals.

    ``procedure``: 'crossed' (default; crossed random-factor variance, t reference) or 'bootstrap'
    (pigeonhole bootstrap with ``n_resamples`` replicates). ``random_factors``: which of rater,
    subject and prompt are random; the others are fixed (their levels are the population).
    Point estimates come from the full data, never from the bootstrap distribution.
    """
    check_choice("procedure", procedure, PROCEDURES)
    check_choice("weights", weights, bootstrap.WEIGHT_CHOICES)
    random_factors = check_random_factors(random_factors)
    confidence_level = check_level(confidence_level)
    if procedure == "bootstrap" and int(n_resamples) < 1:
        raise ValueError(f"n_resamples: expected at least 1 for the bootstrap, got {n_resamples!r}")
    cells = build_cells(table, [ComparisonSpec(int(comparison), -1, -2)], [int(question)])
    results, _ = estimate_win_rates(
        cells,
        procedure=procedure,
        random_factors=random_factors,
        confidence_level=confidence_level,
        n_resamples=int(n_resamples),
        seed=seed,
        weights=weights,
    )
    return results[0]
