"""Bradley-Terry log-strengths of every method, per question, with ties and a left-position term.

P(left wins) has log-odds β_left - β_right + h (h: the left-slot advantage). Ties count half a win
each way ('half') or follow Davidson (1970) ('davidson'). The fit maximises the likelihood minus
ridge/2 |θ|² by damped Newton steps, batched over questions (and bootstrap replicates).

Intervals follow the analysis procedure. 'crossed' (default): a sandwich covariance H⁻¹ B H⁻¹ whose
meat B adds up the per-answer scores by crossed clusters (Cameron, Gelbach & Miller 2011: one-way
cluster sums of every factor set, combined by inclusion-exclusion with G/(G - 1) factors, negative
eigenvalues set to zero), with a t reference on the fewest levels of a random factor minus one
(conservative). 'bootstrap': percentile intervals over the pigeonhole replicates, refitted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

from studyapp.stats import bootstrap
from studyapp.stats.answers import FACTORS, AnswerTable, ComparisonSpec
from studyapp.stats.cells import Cells, build_cells
from studyapp.stats.crossed_variance import ClusterLayout
from studyapp.stats.intervals import ConfidenceInterval
from studyapp.stats.validation import PROCEDURES, check_choice, check_level, check_random_factors

TIE_CHOICES = ("half", "davidson")


@dataclass(frozen=True)
class BradleyTerryResult:
    """Log-strengths (mean zero) of all methods for one question, with intervals.

    P(left beats right) has log-odds beta_left - beta_right + left_advantage. With
    ties='davidson', P(tie) is proportional to exp(tie_log_nu + (eta_left + eta_right) / 2).
    rank = 1 + number of methods whose lower bound is above this method's upper bound.
    dominance[i, j] = P(beta_i > beta_j): the share of replicates (bootstrap) or the t probability
    of the difference (crossed).
    """

    question: int
    methods: tuple[int, ...]
    scores: np.ndarray
    scores_ci_low: np.ndarray
    scores_ci_high: np.ndarray
    standard_errors: np.ndarray
    ranks: np.ndarray
    dominance: np.ndarray
    left_advantage: float
    left_advantage_ci: ConfidenceInterval
    tie_log_nu: float | None
    ties: str
    ridge: float
    converged: bool
    failed_resamples: int
    procedure: str
    random_factors: tuple[str, ...]
    df: float
    n_resamples: int
    confidence_level: float
    seed: int | None

    def ranking(self) -> list[dict[str, Any]]:
        """Rows sorted by score, for tables."""
        order = np.argsort(-self.scores, kind="stable")
        return [
            {
                "method": self.methods[i],
                "score": float(self.scores[i]),
                "rank": int(self.ranks[i]),
                "ci_low": float(self.scores_ci_low[i]),
                "ci_high": float(self.scores_ci_high[i]),
            }
            for i in order
        ]


def _bt_design(comparisons: Sequence[ComparisonSpec], methods: Sequence[int], ties: str) -> np.ndarray:
    """Design tensor (groups, outcomes, params): groups = comparison x side; params = methods,
    left advantage, and for Davidson the log tie propensity. Outcomes: left wins, right wins, tie."""
    index = {m: i for i, m in enumerate(methods)}
    n_params = len(methods) + (2 if ties == "davidson" else 1)
    n_outcomes = 3 if ties == "davidson" else 2
    design = np.zeros((len(comparisons) * 2, n_outcomes, n_params))
    home = len(methods)
    for c, spec in enumerate(comparisons):
        for side in (0, 1):  # side 1: A on the left
            left, right = (spec.method_a, spec.method_b) if side else (spec.method_b, spec.method_a)
            g = 2 * c + side
            design[g, 0, index[left]] += 1
            design[g, 0, home] += 1
            design[g, 1, index[right]] += 1
            if ties == "davidson":
                design[g, 2, home + 1] += 1
                design[g, 2] += 0.5 * (design[g, 0] + design[g, 1])
    return design


def _bt_outcome_counts(counts: np.ndarray, ties: str) -> np.ndarray:
    """(..., comparisons, 2 sides, 3 [A win, tie, B win]) -> (..., groups, outcomes) in screen terms."""
    a_win, tie, b_win = counts[..., 0], counts[..., 1], counts[..., 2]
    side = np.arange(2) == 1  # A on the left
    left_win = np.where(side, a_win, b_win)
    right_win = np.where(side, b_win, a_win)
    if ties == "half":
        stacked = np.stack([left_win + tie / 2, right_win + tie / 2], axis=-1)
    else:
        stacked = np.stack([left_win, right_win, tie], axis=-1)
    return stacked.reshape(*counts.shape[:-3], counts.shape[-3] * 2, stacked.shape[-1])


def _fit_bt_batch(
    design: np.ndarray,
    counts: np.ndarray,
    ridge: float,
    start: np.ndarray | None = None,
    max_iter: int = 100,
    tol: float = 1e-8,
):
    """Maximise sum n_go log softmax(design θ)_go - ridge/2 |θ|² for each batch row of counts.

    The objective is concave (log-sum-exp of affine terms), so damped Newton converges; the
    ridge keeps θ finite when a method never loses and centres the strengths at zero.
    """
    n_batch = counts.shape[0]
    n_groups, n_outcomes, n_params = design.shape
    flat = design.reshape(n_groups * n_outcomes, n_params)
    outer = np.einsum("kd,ke->kde", flat, flat).reshape(n_groups * n_outcomes, n_params * n_params)
    totals = counts.sum(axis=2)  # (batch, groups)
    theta = np.zeros((n_batch, n_params)) if start is None else np.array(np.broadcast_to(start, (n_batch, n_params)))
    eye = np.eye(n_params) * ridge
    converged = np.zeros(n_batch, bool)
    active = np.arange(n_batch)
    # einsum rather than BLAS: these products are thin, and threaded BLAS stalls on a busy machine
    for _ in range(max_iter):
        if active.size == 0:
            break
        th, n, total = theta[active], counts[active], totals[active]
        eta = np.einsum("bd,kd->bk", th, flat).reshape(active.size, n_groups, n_outcomes)
        prob = np.exp(eta - eta.max(axis=2, keepdims=True))
        prob /= prob.sum(axis=2, keepdims=True)
        expected = total[..., None] * prob
        gradient = np.einsum("bk,kd->bd", (n - expected).reshape(active.size, -1), flat) - ridge * th
        hessian = np.einsum("bk,ke->be", expected.reshape(active.size, -1), outer)
        hessian = hessian.reshape(active.size, n_params, n_params)
        mean_design = sum(prob[:, :, o, None] * design[None, :, o, :] for o in range(n_outcomes))
        hessian -= np.einsum("bgd,bge,bg->bde", mean_design, mean_design, total)
        hessian += eye
        step = np.linalg.solve(hessian, gradient[..., None])[..., 0]
        largest = np.abs(step).max(axis=1)
        step *= np.minimum(1.0, 5.0 / np.maximum(largest, 1e-300))[:, None]  # damp wild first steps
        theta[active] = th + step
        done = largest < tol
        converged[active[done]] = True
        active = active[~done]
    theta[~np.isfinite(theta).all(axis=1)] = np.nan
    return theta, converged & np.isfinite(theta).all(axis=1)


def _methods(comparisons: Sequence[ComparisonSpec]) -> list[int]:
    methods: list[int] = []
    for spec in comparisons:
        for m in (spec.method_a, spec.method_b):
            if m not in methods:
                methods.append(m)
    return methods


def bt_results(
    cells: Cells,
    *,
    procedure: str,
    random_factors: tuple[str, ...],
    ties: str,
    ridge: float,
    confidence_level: float,
    n_resamples: int = 0,
    seed: int | None = 0,
    replicates: np.ndarray | None = None,
) -> dict[int, BradleyTerryResult]:
    """One Bradley-Terry fit per question of ``cells``; ``replicates`` are required for 'bootstrap'."""
    methods = _methods(cells.comparisons)
    if not methods:
        return {}
    design = _bt_design(cells.comparisons, methods, ties)
    n_q, n_c, n_m = cells.questions.size, len(cells.comparisons), len(methods)
    full_q = cells.counts().reshape(n_c, n_q, 2, 3).transpose(1, 0, 2, 3)  # (questions, comparisons, side, outcome)
    group_counts = _bt_outcome_counts(full_q, ties)
    theta, converged = _fit_bt_batch(design, group_counts, ridge)
    failed = np.zeros(n_q, np.int64)
    if procedure == "bootstrap":
        boot, failed = _bootstrap_fits(design, replicates, theta, n_c, n_q, ties, ridge)
        low, high = bootstrap.order_statistic_interval(boot.reshape(boot.shape[0], -1), confidence_level, None)
        low, high = low.reshape(n_q, -1), high.reshape(n_q, -1)
        with bootstrap.quiet_nan_warnings():
            se = np.nanstd(_centred(boot, n_m), axis=0, ddof=1) if boot.shape[0] > 1 else np.full(theta.shape, np.nan)
        df = np.full(n_q, np.nan)
    else:
        covariance, df = _crossed_covariance(cells, design, theta, ties, ridge, random_factors)
        covariance = _centre_covariance(covariance, n_m)
        se = np.sqrt(np.maximum(np.diagonal(covariance, axis1=1, axis2=2), 0))
        quantile = sps.t.ppf(0.5 + confidence_level / 2, df)[:, None]
        centred = _centred(theta, n_m)
        low, high = centred - quantile * se, centred + quantile * se
    theta = _centred(theta, n_m)
    results = {}
    for q, question in enumerate(cells.questions):
        if procedure == "bootstrap":
            dominance = _bootstrap_dominance(boot[:, q, :n_m])
        else:
            dominance = _t_dominance(theta[q, :n_m], covariance[q, :n_m, :n_m], df[q])
        lower, upper = np.nan_to_num(low[q, :n_m], nan=-np.inf), np.nan_to_num(high[q, :n_m], nan=np.inf)
        ranks = 1 + (lower[None, :] > upper[:, None]).sum(axis=1)
        results[int(question)] = BradleyTerryResult(
            int(question),
            tuple(methods),
            theta[q, :n_m],
            low[q, :n_m],
            high[q, :n_m],
            se[q, :n_m],
            ranks,
            dominance,
            float(theta[q, n_m]),
            ConfidenceInterval(float(low[q, n_m]), float(high[q, n_m])),
            float(theta[q, n_m + 1]) if ties == "davidson" else None,
            ties,
            ridge,
            bool(converged[q]),
            int(failed[q]),
            procedure,
            random_factors,
            float(df[q]),
            int(n_resamples),
            confidence_level,
            seed,
        )
    return results


def _centred(theta: np.ndarray, n_methods: int) -> np.ndarray:
    """The likelihood ignores a common shift of the strengths: report them with mean zero."""
    out = np.array(theta, float)
    out[..., :n_methods] -= out[..., :n_methods].mean(axis=-1, keepdims=True)
    return out


def _centre_covariance(covariance: np.ndarray, n_methods: int) -> np.ndarray:
    n_params = covariance.shape[-1]
    transform = np.eye(n_params)
    transform[:n_methods, :n_methods] -= 1.0 / n_methods
    return transform @ covariance @ transform.T


def _bootstrap_fits(design, replicates, theta, n_c, n_q, ties, ridge):
    n_resamples = replicates.shape[0]
    boot_q = replicates.reshape(n_resamples, n_c, n_q, 2, 3).transpose(0, 2, 1, 3, 4).astype(np.float64)
    batch = _bt_outcome_counts(boot_q.reshape(n_resamples * n_q, n_c, 2, 3), ties)
    start = np.tile(np.nan_to_num(theta), (n_resamples, 1))  # replicates start at the full-data fit
    boot, converged = _fit_bt_batch(design, batch, ridge, start)
    boot[~converged] = np.nan
    failed = (~converged).reshape(n_resamples, n_q).sum(axis=0)
    return _centred(boot.reshape(n_resamples, n_q, design.shape[2]), _n_methods(design, ties)), failed


def _n_methods(design: np.ndarray, ties: str) -> int:
    return design.shape[2] - (2 if ties == "davidson" else 1)


def _bootstrap_dominance(boot: np.ndarray) -> np.ndarray:
    ok = ~np.isnan(boot[:, 0])
    if not ok.any():
        return np.full((boot.shape[1], boot.shape[1]), np.nan)
    return (boot[ok, :, None] > boot[ok, None, :]).mean(axis=0)


def _t_dominance(scores: np.ndarray, covariance: np.ndarray, df: float) -> np.ndarray:
    variance = np.diagonal(covariance)
    with np.errstate(invalid="ignore", divide="ignore"):
        spread = np.sqrt(np.maximum(variance[:, None] + variance[None, :] - 2 * covariance, 0))
        statistic = (scores[:, None] - scores[None, :]) / spread
    dominance = sps.t.cdf(statistic, df)
    np.fill_diagonal(dominance, np.nan)
    return dominance


def _row_outcomes(cells: Cells, ties: str) -> tuple[np.ndarray, np.ndarray]:
    """Each kept row's BT group (comparison x side) and its outcome weights (left, right[, tie])."""
    within = cells.column % 6
    side, outcome = within // 3, within % 3  # side 1: A on the left; outcome 0 A won, 1 tie, 2 B won
    group = 2 * (cells.cell // cells.questions.size) + side
    left_won = np.where(side == 1, outcome == 0, outcome == 2)
    right_won = np.where(side == 1, outcome == 2, outcome == 0)
    tie = outcome == 1
    if ties == "half":
        weights = np.stack([left_won + tie / 2, right_won + tie / 2], axis=1)
    else:
        weights = np.stack([left_won, right_won, tie], axis=1).astype(float)
    return group, weights


def _probabilities(design: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """(questions, groups, outcomes) outcome probabilities of every group under ``theta``."""
    eta = np.einsum("qp,gop->qgo", np.nan_to_num(theta), design)
    prob = np.exp(eta - eta.max(axis=2, keepdims=True))
    return prob / prob.sum(axis=2, keepdims=True)


def _crossed_covariance(cells, design, theta, ties, ridge, random_factors):
    """Sandwich covariance per question with a crossed-cluster meat; df = fewest random levels - 1."""
    n_q, n_params = cells.questions.size, design.shape[2]
    question = cells.cell % cells.questions.size
    group, weights = _row_outcomes(cells, ties)
    prob = _probabilities(design, theta)
    residual = weights - weights.sum(axis=1, keepdims=True) * prob[question, group]
    scores = np.einsum("ro,rop->rp", residual, design[group])
    layout = ClusterLayout.build(question, {f: cells.factor_codes[f] for f in FACTORS}, n_q)
    fine_scores = np.stack(
        [np.bincount(layout.row_fine, weights=scores[:, p], minlength=layout.fine_cell.size) for p in range(n_params)],
        axis=1,
    )
    random_mask = sum(1 << FACTORS.index(f) for f in random_factors)
    meat = np.zeros((n_q, n_params, n_params))
    for i, mask in enumerate(layout.masks):
        n_clusters = layout.cluster_cell[i].size
        sums = np.stack(
            [np.bincount(layout.cluster_of[i], weights=column, minlength=n_clusters) for column in fine_scores.T],
            axis=1,
        )
        coefficient = _inclusion_exclusion(mask, layout.masks[-1], random_mask)
        for q in range(n_q):
            rows = sums[layout.cluster_cell[i] == q]
            if coefficient and rows.shape[0] > 1:
                meat[q] += coefficient * rows.shape[0] / (rows.shape[0] - 1) * (rows.T @ rows)
    meat = _nearest_psd(meat)
    information = _information(design, prob, cells, ties, ridge)
    inverse = np.linalg.pinv(information)
    counts = {f: np.array([np.unique(cells.factor_codes[f][question == q]).size for q in range(n_q)]) for f in FACTORS}
    fewest = np.min([counts[f] for f in random_factors], axis=0) if random_factors else np.full(n_q, np.inf)
    return inverse @ meat @ inverse, np.maximum(fewest - 1, 1).astype(float)


def _inclusion_exclusion(mask: int, full: int, random_mask: int) -> int:
    """How often the cluster sums of ``mask`` enter: Σ over counted subsets T of mask of (-1)^(|mask| - |T|)."""
    total = 0
    subset = mask
    while subset:
        if subset & random_mask or subset == full:
            total += (-1) ** (bin(mask).count("1") - bin(subset).count("1"))
        subset = (subset - 1) & mask
    return total


def _nearest_psd(matrices: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrices + np.swapaxes(matrices, 1, 2)) / 2)
    return np.einsum("qij,qj,qkj->qik", vectors, np.maximum(values, 0), vectors)


def _information(design, prob, cells, ties, ridge) -> np.ndarray:
    """Expected information (Hessian of the penalised negative log-likelihood) per question."""
    n_q = cells.questions.size
    n_c = len(cells.comparisons)
    totals = cells.counts().reshape(n_c, n_q, 2, 3).transpose(1, 0, 2, 3).sum(axis=3).reshape(n_q, 2 * n_c)
    mean_design = np.einsum("qgo,gop->qgp", prob, design)
    second = np.einsum("qgo,gop,goe->qgpe", prob, design, design)
    information = np.einsum("qg,qgpe->qpe", totals, second - np.einsum("qgp,qge->qgpe", mean_design, mean_design))
    return information + ridge * np.eye(design.shape[2])


def bradley_terry(
    table: AnswerTable,
    comparisons: Sequence[ComparisonSpec],
    *,
    questions: Sequence[int] | None = None,
    ties: str = "half",
    ridge: float = 0.01,
    procedure: str = "crossed",
    random_factors=FACTORS,
    n_resamples: int = 2000,
    confidence_level: float = 0.95,
    seed: int | None = 0,
    weights: str = "multinomial",
) -> dict[int, BradleyTerryResult]:
    """Bradley-Terry log-strengths of every method in ``comparisons``, one fit per question.

    ``ridge`` is a Gaussian prior N(0, 1/ridge) on every parameter, so a method that always wins
    still gets a finite score. Intervals follow ``procedure`` (module doc); bootstrap replicates
    that fail to converge are dropped and counted.
    """
    check_choice("ties", ties, TIE_CHOICES)
    check_choice("procedure", procedure, PROCEDURES)
    check_choice("weights", weights, bootstrap.WEIGHT_CHOICES)
    random_factors = check_random_factors(random_factors)
    if not ridge > 0:
        raise ValueError(f"ridge: expected a positive number, got {ridge!r}")
    confidence_level = check_level(confidence_level)
    cells = build_cells(table, comparisons, questions)
    replicates = None
    if procedure == "bootstrap":
        if int(n_resamples) < 1:
            raise ValueError(f"n_resamples: expected at least 1 for the bootstrap, got {n_resamples!r}")
        rng = np.random.default_rng(seed)
        replicates = bootstrap.replicate_counts(cells, int(n_resamples), rng, random_factors, weights)
    return bt_results(
        cells,
        procedure=procedure,
        random_factors=random_factors,
        ties=ties,
        ridge=ridge,
        confidence_level=confidence_level,
        n_resamples=int(n_resamples),
        seed=seed,
        replicates=replicates,
    )
