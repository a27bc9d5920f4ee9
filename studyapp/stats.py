"""Statistics for pairwise human-evaluation studies: pure numpy/scipy over answer arrays.

Nothing here imports Django. The web side turns querysets into an `AnswerTable` with
`AnswerTable.from_rows(queryset.values_list(*AnswerTable.COLUMNS))` and calls `analyse`.

Data layout: one row per (answer, question), in method space. For a comparison "A vs B",
``outcome`` is +1 when method A was chosen, -1 when method B was chosen and 0 for "Can't decide".
The screen side is kept in ``left_is_a`` so position bias can be measured and modelled.

Formulas follow the study's statistics note (human-eval-spec, section 2); docs/statistics.md
explains each number and why the two-way cluster bootstrap is the default interval.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from scipy import sparse
from scipy import stats as sps

__all__ = [
    "AgreementResult",
    "AnalysisResult",
    "AnalysisSettings",
    "AnswerTable",
    "BradleyTerryResult",
    "ComparisonRow",
    "ComparisonSpec",
    "ConfidenceInterval",
    "ExclusionResult",
    "ExclusionRules",
    "MetricAgreementResult",
    "RaterQuality",
    "SampleSizePlan",
    "SensitivityResult",
    "SignFlipTestResult",
    "SignTestResult",
    "WinRateResult",
    "agreement",
    "analyse",
    "analyse_with_and_without_exclusions",
    "apply_exclusion_rules",
    "bradley_terry",
    "fleiss_kappa",
    "holm",
    "krippendorff_alpha_nominal",
    "metric_agreement",
    "plan_sample_size",
    "rater_quality",
    "sign_flip_test",
    "sign_test",
    "significance_mark",
    "win_rate",
    "wilson_interval",
]

A_WINS, TIE, B_WINS = 1, 0, -1
_OUTCOME_COLUMN = {A_WINS: 0, TIE: 1, B_WINS: 2}  # column order of the W / T / L count arrays
_CLUSTER_CHOICES = ("two-way", "rater", "item", "none")
_WEIGHT_CHOICES = ("multinomial", "poisson")
_TEST_CHOICES = ("sign_flip", "bootstrap", "sign")
_TIE_CHOICES = ("half", "davidson")


def _choice(name: str, value: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


def _check_level(confidence_level: float) -> float:
    if not 0.0 < confidence_level < 1.0:
        raise ValueError(f"confidence_level: expected a number in (0, 1), got {confidence_level!r}")
    return float(confidence_level)


# --------------------------------------------------------------------------------------------
# The answer table
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class AnswerTable:
    """Answers as parallel arrays, one row per (answer, question), outcome in method space.

    Columns: ``comparison`` (comparison id), ``question`` (question id), ``rater`` (rater id),
    ``item`` (prompt id: the second cluster), ``pair`` (pair id), ``outcome`` (+1 A won, 0 tie,
    -1 B won), ``left_is_a`` (A shown on the left), ``time_ms`` (time for the whole pair; NaN if
    unknown), ``is_gold``, ``is_attention`` (check rows, left out of the win rates) and
    ``check_passed`` (for check rows: answered correctly). Ids are any integers.
    """

    comparison: np.ndarray
    question: np.ndarray
    rater: np.ndarray
    item: np.ndarray
    pair: np.ndarray
    outcome: np.ndarray
    left_is_a: np.ndarray
    time_ms: np.ndarray
    is_gold: np.ndarray
    is_attention: np.ndarray
    check_passed: np.ndarray

    COLUMNS = (
        "comparison", "question", "rater", "item", "pair", "outcome", "left_is_a", "time_ms",
        "is_gold", "is_attention", "check_passed",
    )  # fmt: skip
    _DTYPES = {
        "comparison": np.int64, "question": np.int64, "rater": np.int64, "item": np.int64,
        "pair": np.int64, "outcome": np.int8, "left_is_a": bool, "time_ms": np.float64,
        "is_gold": bool, "is_attention": bool, "check_passed": bool,
    }  # fmt: skip

    def __post_init__(self) -> None:
        lengths = set()
        for name in self.COLUMNS:
            raw = getattr(self, name)
            array = np.asarray(raw if raw is not None else [], dtype=float if name == "time_ms" else None)
            if array.size and array.dtype == object:
                raise ValueError(f"{name}: expected numbers, got {array[:3].tolist()!r}...")
            if array.ndim != 1:
                raise ValueError(f"{name}: expected a 1-d sequence, got shape {array.shape}")
            array = np.array(array, dtype=self._DTYPES[name])
            array.setflags(write=False)
            object.__setattr__(self, name, array)
            lengths.add(array.size)
        if len(lengths) > 1:
            sizes = {name: getattr(self, name).size for name in self.COLUMNS}
            raise ValueError(f"AnswerTable: expected columns of equal length, got {sizes}")
        bad = ~np.isin(self.outcome, (A_WINS, TIE, B_WINS))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"outcome: expected +1 (A won), 0 (can't decide) or -1 (B won), "
                f"got {int(self.outcome[row])} at row {row}"
            )

    @classmethod
    def from_lists(
        cls,
        *,
        comparison: Sequence[int],
        question: Sequence[int],
        rater: Sequence[int],
        item: Sequence[int],
        outcome: Sequence[int],
        pair: Sequence[int] | None = None,
        left_is_a: Sequence[bool] | None = None,
        time_ms: Sequence[float | None] | None = None,
        is_gold: Sequence[bool] | None = None,
        is_attention: Sequence[bool] | None = None,
        check_passed: Sequence[bool] | None = None,
    ) -> AnswerTable:
        """Build from plain lists; optional columns default to: pair = row number,
        A on the left, unknown time, no checks."""
        n = len(outcome)
        return cls(
            comparison=comparison,
            question=question,
            rater=rater,
            item=item,
            pair=np.arange(n) if pair is None else pair,
            outcome=outcome,
            left_is_a=np.ones(n, bool) if left_is_a is None else left_is_a,
            time_ms=np.full(n, np.nan) if time_ms is None else [np.nan if t is None else t for t in time_ms],
            is_gold=np.zeros(n, bool) if is_gold is None else is_gold,
            is_attention=np.zeros(n, bool) if is_attention is None else is_attention,
            check_passed=np.zeros(n, bool) if check_passed is None else [bool(v) for v in check_passed],
        )

    @classmethod
    def from_rows(cls, rows: Iterable[Sequence[Any]], columns: Sequence[str] = COLUMNS) -> AnswerTable:
        """Build from tuples such as ``values_list(*AnswerTable.COLUMNS)``; missing columns get
        the defaults of `from_lists`."""
        unknown = set(columns) - set(cls.COLUMNS)
        if unknown:
            raise ValueError(f"columns: expected names from {cls.COLUMNS}, got unknown {sorted(unknown)}")
        rows = list(rows)
        data = {name: [row[i] for row in rows] for i, name in enumerate(columns)}
        missing = {"comparison", "question", "rater", "item", "outcome"} - set(data)
        if missing:
            raise ValueError(f"columns: missing required {sorted(missing)}")
        return cls.from_lists(**data)

    @classmethod
    def empty(cls) -> AnswerTable:
        return cls.from_lists(comparison=[], question=[], rater=[], item=[], outcome=[])

    def __len__(self) -> int:
        return int(self.outcome.size)

    def select(self, mask: np.ndarray) -> AnswerTable:
        """The rows where ``mask`` is true."""
        return AnswerTable(**{name: getattr(self, name)[mask] for name in self.COLUMNS})

    def without_raters(self, rater_ids: Iterable[int]) -> AnswerTable:
        return self.select(~np.isin(self.rater, np.fromiter(rater_ids, np.int64)))

    @property
    def is_check(self) -> np.ndarray:
        return self.is_gold | self.is_attention

    @property
    def picked_left(self) -> np.ndarray:
        """Decisive answers that chose the image shown on the left."""
        return ((self.outcome == A_WINS) & self.left_is_a) | ((self.outcome == B_WINS) & ~self.left_is_a)


@dataclass(frozen=True)
class ComparisonSpec:
    """A declared comparison: method A against method B. ``in_family``: part of the Holm family."""

    id: int
    method_a: int
    method_b: int
    label: str = ""
    in_family: bool = True


class ConfidenceInterval(NamedTuple):
    low: float
    high: float


# --------------------------------------------------------------------------------------------
# Closed-form pieces: Wilson, sign test, Holm, sample size
# --------------------------------------------------------------------------------------------


def wilson_interval(k: Any, n: Any, confidence_level: float = 0.95) -> ConfidenceInterval:
    """Wilson score interval for k successes out of n (vectorised; NaN where n == 0).

    centre = (p + z²/2n) / (1 + z²/n), half-width = z/(1 + z²/n) · sqrt(p(1-p)/n + z²/4n²)
    (Wilson 1927; Newcombe 1998, method 3).
    """
    z = sps.norm.ppf(0.5 + _check_level(confidence_level) / 2)
    k = np.asarray(k, float)
    n = np.asarray(n, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denominator = 1 + z**2 / n
        centre = (p + z**2 / (2 * n)) / denominator
        half = z / denominator * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
        low, high = np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)
    low, high = np.where(n > 0, low, np.nan), np.where(n > 0, high, np.nan)
    if low.ndim == 0:
        return ConfidenceInterval(float(low), float(high))
    return ConfidenceInterval(low, high)


@dataclass(frozen=True)
class SignTestResult:
    """Exact two-sided sign test of W against L (ties dropped): H0 says P(A | decided) = 1/2."""

    wins: int
    losses: int
    ties: int
    statistic: float  # decisive win rate W / (W + L)
    pvalue: float

    def proportion_ci(self, confidence_level: float = 0.95) -> ConfidenceInterval:
        return wilson_interval(self.wins, self.wins + self.losses, confidence_level)


def _sign_test_pvalues(wins: Any, losses: Any) -> np.ndarray:
    """Two-sided exact binomial p-values against 1/2: min(1, 2 P(X >= max(W, L))), X ~ Bin(W + L, 1/2)."""
    wins, losses = np.asarray(wins, np.int64), np.asarray(losses, np.int64)
    tail = sps.binom.sf(np.maximum(wins, losses) - 1, wins + losses, 0.5)
    return np.where(wins + losses > 0, np.minimum(1.0, 2 * tail), 1.0)


def sign_test(wins: int, losses: int, ties: int = 0) -> SignTestResult:
    """Exact sign test; assumes independent answers, so it is the naive reference here."""
    wins, losses = int(wins), int(losses)
    if wins < 0 or losses < 0:
        raise ValueError(f"wins, losses: expected non-negative counts, got {wins}, {losses}")
    n = wins + losses
    pvalue = float(_sign_test_pvalues(wins, losses))
    rate = wins / n if n else float("nan")
    return SignTestResult(wins, losses, int(ties), rate, pvalue)


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm step-down adjusted p-values: p̃_(k) = max_{j<=k} min(1, (m - j + 1) p_(j)).

    NaN entries are left out of the family and stay NaN.
    """
    p = np.asarray(pvalues, float)
    adjusted = np.full(p.shape, np.nan)
    present = np.flatnonzero(~np.isnan(p))
    m = present.size
    if m == 0:
        return adjusted
    order = present[np.argsort(p[present], kind="stable")]
    stepped = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted[order] = np.maximum.accumulate(stepped)
    return adjusted


def significance_mark(adjusted_p: float, alpha: float = 0.05) -> str:
    """'***' below alpha/50, '**' below alpha/5, '*' below alpha, else ''."""
    if adjusted_p is None or np.isnan(adjusted_p):
        return ""
    for mark, level in (("***", alpha / 50), ("**", alpha / 5), ("*", alpha)):
        if adjusted_p < level:
            return mark
    return ""


@dataclass(frozen=True)
class SampleSizePlan:
    """Answers needed per comparison and question (spec 2.8)."""

    win_rate: float
    power: float
    alpha: float
    n_comparisons: int
    tie_rate: float
    design_effect: float
    alpha_per_test: float
    n_decisive: int
    n_total: int


def plan_sample_size(
    win_rate: float,
    *,
    power: float = 0.8,
    alpha: float = 0.05,
    n_comparisons: int = 1,
    tie_rate: float = 0.0,
    design_effect: float = 1.0,
) -> SampleSizePlan:
    """n_dec = [z_{1-a/2}·0.5 + z_{power}·sqrt(w(1-w))]² / (w - 0.5)², N = n_dec·DEFF / (1 - tie_rate).

    Holm over k tests is planned at its first step, alpha / k (the Bonferroni level), which is
    what the smallest p-value must beat.
    """
    if not 0 < win_rate < 1 or win_rate == 0.5:
        raise ValueError(f"win_rate: expected a number in (0, 1) other than 0.5, got {win_rate!r}")
    if not 0 < power < 1:
        raise ValueError(f"power: expected a number in (0, 1), got {power!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha: expected a number in (0, 1), got {alpha!r}")
    if int(n_comparisons) < 1:
        raise ValueError(f"n_comparisons: expected an integer >= 1, got {n_comparisons!r}")
    if not 0 <= tie_rate < 1:
        raise ValueError(f"tie_rate: expected a number in [0, 1), got {tie_rate!r}")
    if design_effect < 1:
        raise ValueError(f"design_effect: expected a number >= 1, got {design_effect!r}")
    alpha_per_test = alpha / int(n_comparisons)
    z_alpha = sps.norm.ppf(1 - alpha_per_test / 2)
    z_power = sps.norm.ppf(power)
    n_decisive = (z_alpha * 0.5 + z_power * np.sqrt(win_rate * (1 - win_rate))) ** 2 / (win_rate - 0.5) ** 2
    n_total = n_decisive * design_effect / (1 - tie_rate)
    return SampleSizePlan(
        win_rate, power, alpha, int(n_comparisons), tie_rate, design_effect, alpha_per_test,
        int(np.ceil(n_decisive - 1e-9)), int(np.ceil(n_total - 1e-9)),
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# Resampling weights and cell counts
# --------------------------------------------------------------------------------------------


def _cluster_weights(rng: np.random.Generator, n_clusters: int, n_resamples: int, kind: str) -> np.ndarray:
    """(n_clusters, n_resamples) float32 weights: times each cluster is drawn in each replicate.

    'multinomial' draws n_clusters clusters with replacement (the ordinary bootstrap);
    'poisson' gives each cluster an independent Poisson(1) count (Owen & Eckles 2012).
    """
    if n_clusters == 0:
        return np.zeros((0, n_resamples), np.float32)
    if kind == "poisson":
        return rng.poisson(1.0, size=(n_clusters, n_resamples)).astype(np.float32)
    drawn = rng.integers(0, n_clusters, size=(n_resamples, n_clusters))
    drawn += np.arange(n_resamples)[:, None] * n_clusters
    counts = np.bincount(drawn.ravel(), minlength=n_resamples * n_clusters).reshape(n_resamples, n_clusters)
    return np.ascontiguousarray(counts.T, dtype=np.float32)


def _codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels, codes = np.unique(values, return_inverse=True)
    return labels, codes.reshape(-1)


@dataclass(frozen=True)
class _Cells:
    """Rows of the main analysis mapped to (comparison, question, side, outcome) count columns."""

    comparisons: tuple[ComparisonSpec, ...]
    questions: np.ndarray
    rater_labels: np.ndarray
    item_labels: np.ndarray
    rater: np.ndarray  # codes per kept row
    item: np.ndarray
    cell: np.ndarray  # comparison index * n_questions + question index
    column: np.ndarray  # cell * 6 + side * 3 + outcome column (side 1 = A on the left)
    outcome: np.ndarray

    @property
    def n_cells(self) -> int:
        return len(self.comparisons) * self.questions.size


def _position_in(values: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Index of each value in ``ids`` (distinct; every value is present)."""
    order = np.argsort(ids, kind="stable")
    return order[np.searchsorted(ids[order], values)]


def _cells(table: AnswerTable, comparisons: Sequence[ComparisonSpec], questions: Sequence[int] | None) -> _Cells:
    comparisons = tuple(comparisons)
    ids = np.array([c.id for c in comparisons], np.int64)
    if np.unique(ids).size != ids.size:
        raise ValueError(f"comparisons: expected distinct ids, got {ids.tolist()}")
    question_ids = np.unique(table.question[~table.is_check]) if questions is None else np.asarray(questions, np.int64)
    if np.unique(question_ids).size != question_ids.size:
        raise ValueError(f"questions: expected distinct ids, got {question_ids.tolist()}")
    keep = ~table.is_check & np.isin(table.comparison, ids) & np.isin(table.question, question_ids)
    comparison_index = _position_in(table.comparison[keep], ids)
    question_index = _position_in(table.question[keep], question_ids)
    rater_labels, rater = _codes(table.rater[keep])
    item_labels, item = _codes(table.item[keep])
    cell = comparison_index * question_ids.size + question_index
    outcome = table.outcome[keep]
    column = cell * 6 + table.left_is_a[keep].astype(np.int64) * 3 + (1 - outcome.astype(np.int64))
    return _Cells(comparisons, question_ids, rater_labels, item_labels, rater, item, cell, column, outcome)


def _full_counts(cells: _Cells) -> np.ndarray:
    """Counts per (cell, side, outcome) on the full data: shape (n_cells, 2, 3)."""
    return np.bincount(cells.column, minlength=cells.n_cells * 6).reshape(cells.n_cells, 2, 3).astype(float)


def _replicate_counts(
    cells: _Cells, n_resamples: int, rng: np.random.Generator, cluster: str, weights: str
) -> np.ndarray:
    """Weighted counts per replicate: shape (n_resamples, n_cells, 2, 3), float32 (exact: integers).

    Each answer's weight is (times its rater was drawn) x (times its prompt was drawn). Answers
    are first collapsed to unique (rater, prompt, count column) keys, then one row gather per
    (rater, prompt) and a sparse matrix product add them up, one comparison and chunk at a time
    to bound memory.
    """
    n_columns = cells.n_cells * 6
    out = np.zeros((n_columns, n_resamples), np.float32)
    if cells.rater.size == 0 or n_resamples == 0:
        return out.T.reshape(n_resamples, cells.n_cells, 2, 3)
    if cluster == "none":  # i.i.d. answers: a multinomial over the count columns is exact and tiny
        full = np.bincount(cells.column, minlength=n_columns)
        if weights == "poisson":
            draws = rng.poisson(np.broadcast_to(full, (n_resamples, n_columns)))
        else:
            draws = rng.multinomial(full.sum(), full / full.sum(), size=n_resamples)
        return draws.astype(np.float32).reshape(n_resamples, cells.n_cells, 2, 3)
    rater_code, n_raters = cells.rater, cells.rater_labels.size
    item_code, n_items = cells.item, cells.item_labels.size
    if cluster == "rater":
        item_code, n_items = np.zeros_like(cells.item), 1
    if cluster == "item":
        rater_code, n_raters = np.zeros_like(cells.rater), 1
    resampled = lambda n: _cluster_weights(rng, n, n_resamples, weights)  # noqa: E731
    rater_w = resampled(n_raters) if cluster != "item" else np.ones((1, n_resamples), np.float32)
    item_w = resampled(n_items) if cluster in ("two-way", "item") else np.ones((1, n_resamples), np.float32)
    block_columns = cells.questions.size * 6
    n_pair_keys = n_raters * n_items
    block, within = np.divmod(cells.column, block_columns)
    key = (block * n_pair_keys + rater_code.astype(np.int64) * n_items + item_code) * block_columns + within
    unique_key, count = np.unique(key, return_counts=True)  # sorted by comparison block
    rest, within = np.divmod(unique_key, block_columns)
    block, pair_key = np.divmod(rest, n_pair_keys)
    bounds = np.searchsorted(block, np.arange(len(cells.comparisons) + 1))
    chunk = max(1, 1_000_000 // max(n_resamples, 1))  # keeps each weight block near cache size
    for b in range(len(cells.comparisons)):
        lo, hi = bounds[b], bounds[b + 1]
        if lo == hi:
            continue
        rows_pairs, inverse = np.unique(pair_key[lo:hi], return_inverse=True)
        # sparse (count column x key) matrix: a single-threaded product stays fast on a busy machine
        design = sparse.csc_matrix(
            (count[lo:hi].astype(np.float32), (within[lo:hi], inverse.reshape(-1))),
            shape=(block_columns, rows_pairs.size),
        )
        pr, pi = np.divmod(rows_pairs, n_items)
        for start in range(0, rows_pairs.size, chunk):
            stop = start + chunk
            weight = rater_w[pr[start:stop]]
            weight *= item_w[pi[start:stop]]
            out[b * block_columns : (b + 1) * block_columns] += design[:, start:stop] @ weight
    return np.ascontiguousarray(out.T).reshape(n_resamples, cells.n_cells, 2, 3)


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


def _percentile_interval(replicates: np.ndarray, confidence_level: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval over axis 0 ignoring undefined replicates (NaN if all undefined)."""
    tail = (1 - confidence_level) / 2
    if replicates.shape[0] == 0:
        nan = np.full(replicates.shape[1:], np.nan)
        return nan, nan
    with np.errstate(invalid="ignore"), _quiet_nan_warnings():
        low, high = np.nanquantile(replicates, [tail, 1 - tail], axis=0)
    return low, high


@contextlib.contextmanager
def _quiet_nan_warnings():
    """All-NaN slices (cells without decisive answers) are expected; their result is NaN."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _bootstrap_pvalue(replicates: np.ndarray, null: float = 0.5) -> np.ndarray:
    """Two-sided percentile-bootstrap p-value: smallest level at which the interval excludes null."""
    defined = ~np.isnan(replicates)
    n = defined.sum(axis=0)
    below = ((replicates <= null) & defined).sum(axis=0)
    above = ((replicates >= null) & defined).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.minimum(1.0, 2 * (np.minimum(below, above) + 1) / (n + 1))
    return np.where(n > 0, p, np.nan)


# --------------------------------------------------------------------------------------------
# Win rates per comparison x question
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WinRateResult:
    """One comparison x question: counts, point estimates from the full data, and intervals."""

    comparison: int
    question: int
    wins: int
    ties: int
    losses: int
    win_rate: float
    win_rate_ci: ConfidenceInterval  # from the chosen cluster bootstrap
    tie_rate: float
    tie_rate_ci: ConfidenceInterval
    tie_half_score: float
    tie_half_score_ci: ConfidenceInterval
    design_effect: float  # bootstrap variance of the win rate / binomial variance
    n_raters: int
    n_items: int
    undefined_resamples: int  # replicates without a decisive answer (left out of the interval)
    cluster: str
    n_resamples: int
    confidence_level: float
    seed: int | None

    @property
    def n(self) -> int:
        return self.wins + self.ties + self.losses

    @property
    def n_decisive(self) -> int:
        return self.wins + self.losses

    def wilson_ci(self, confidence_level: float | None = None) -> ConfidenceInterval:
        """The naive interval: treats every decisive answer as independent."""
        return wilson_interval(self.wins, self.n_decisive, confidence_level or self.confidence_level)


def _win_rate_results(
    cells: _Cells, n_resamples: int, confidence_level: float, seed: int | None, cluster: str, weights: str,
    replicates: np.ndarray | None = None,
) -> tuple[list[WinRateResult], np.ndarray]:  # fmt: skip
    full = _full_counts(cells)  # (cells, 2, 3)
    if replicates is None:
        replicates = _replicate_counts(cells, n_resamples, np.random.default_rng(seed), cluster, weights)
    point = _rates(full.sum(axis=1))
    boot = _rates(replicates.sum(axis=2).astype(np.float64))
    intervals = {name: _percentile_interval(values, confidence_level) for name, values in boot.items()}
    with np.errstate(invalid="ignore", divide="ignore"), _quiet_nan_warnings():
        boot_var = np.nanvar(boot["win_rate"], axis=0) if n_resamples > 1 else np.full(cells.n_cells, np.nan)
        decisive = full[:, :, 0].sum(1) + full[:, :, 2].sum(1)
        iid_var = point["win_rate"] * (1 - point["win_rate"]) / decisive
        design_effect = np.where(iid_var > 0, boot_var / iid_var, np.nan)
    undefined = np.isnan(boot["win_rate"]).sum(axis=0)
    raters_per_cell = _distinct_per_cell(cells.cell, cells.rater, cells.n_cells)
    items_per_cell = _distinct_per_cell(cells.cell, cells.item, cells.n_cells)
    results = []
    for index in range(cells.n_cells):
        comparison = cells.comparisons[index // cells.questions.size]
        wins, ties, losses = (int(v) for v in full[index].sum(axis=0))
        ci = {name: ConfidenceInterval(float(lo[index]), float(hi[index])) for name, (lo, hi) in intervals.items()}
        results.append(
            WinRateResult(
                comparison.id, int(cells.questions[index % cells.questions.size]), wins, ties, losses,
                float(point["win_rate"][index]), ci["win_rate"], float(point["tie_rate"][index]), ci["tie_rate"],
                float(point["tie_half_score"][index]), ci["tie_half_score"], float(design_effect[index]),
                int(raters_per_cell[index]), int(items_per_cell[index]), int(undefined[index]),
                cluster, n_resamples, confidence_level, seed,
            )  # fmt: skip
        )
    return results, boot["win_rate"]


def _distinct_per_cell(cell: np.ndarray, codes: np.ndarray, n_cells: int) -> np.ndarray:
    if cell.size == 0:
        return np.zeros(n_cells, int)
    unique = np.unique(cell.astype(np.int64) * (int(codes.max()) + 1) + codes)
    return np.bincount(unique // (int(codes.max()) + 1), minlength=n_cells)


def win_rate(
    table: AnswerTable,
    comparison: int,
    question: int,
    *,
    n_resamples: int = 2000,
    confidence_level: float = 0.95,
    seed: int | None = 0,
    cluster: str = "two-way",
    weights: str = "multinomial",
) -> WinRateResult:
    """Wins / ties / losses and rates for one comparison and question, with bootstrap intervals.

    ``cluster``: 'two-way' (default) resamples raters and prompts independently (Owen 2007);
    'rater' or 'item' resample one factor; 'none' resamples answers i.i.d.
    Point estimates come from the full data, never from the bootstrap distribution.
    """
    _choice("cluster", cluster, _CLUSTER_CHOICES)
    _choice("weights", weights, _WEIGHT_CHOICES)
    confidence_level = _check_level(confidence_level)
    spec = ComparisonSpec(int(comparison), -1, -2)
    cells = _cells(table, [spec], [int(question)])
    results, _ = _win_rate_results(cells, int(n_resamples), confidence_level, seed, cluster, weights)
    return results[0]


# --------------------------------------------------------------------------------------------
# Rater-level sign-flip randomisation test
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignFlipTestResult:
    """Rater-level sign-flip test: statistic = mean over raters of (W_u - L_u) / (W_u + L_u)."""

    statistic: float
    pvalue: float
    n_raters: int
    n_resamples: int
    exact: bool
    seed: int | None


def _per_rater_net(cell: np.ndarray, rater: np.ndarray, outcome: np.ndarray, n_cells: int, n_raters: int):
    index = cell.astype(np.int64) * n_raters + rater
    size = n_cells * n_raters
    net = np.bincount(index, weights=outcome.astype(float), minlength=size).reshape(n_cells, n_raters)
    decisive = np.bincount(index, weights=(outcome != TIE).astype(float), minlength=size).reshape(n_cells, n_raters)
    with np.errstate(invalid="ignore", divide="ignore"):
        score = np.where(decisive > 0, net / decisive, 0.0)
    return score, decisive > 0


def _sign_flip_pvalues(score: np.ndarray, present: np.ndarray, n_resamples: int, seed: int | None):
    """p-values per row of ``score`` (cells x raters); exact enumeration when it is cheaper."""
    n_present = present.sum(axis=1)
    n_raters = score.shape[1]
    with np.errstate(invalid="ignore", divide="ignore"):
        observed = np.where(n_present > 0, score.sum(axis=1) / n_present, np.nan)
    max_present = int(n_present.max()) if n_present.size else 0
    exact = 0 < max_present and 2**max_present <= n_resamples
    if exact:  # enumerate all sign patterns over the present raters of each cell
        pvalues = np.full(score.shape[0], np.nan)
        for row in np.flatnonzero(n_present > 0):
            values = score[row, present[row]]
            patterns = 1 - 2 * ((np.arange(2 ** values.size)[:, None] >> np.arange(values.size)) & 1)
            flipped = np.abs(patterns @ values) / values.size
            pvalues[row] = np.mean(flipped >= abs(observed[row]) - 1e-12)
        return observed, pvalues, True
    rng = np.random.default_rng(seed)
    signs = rng.integers(0, 2, size=(n_resamples, n_raters), dtype=np.int8).astype(np.float64) * 2 - 1
    flipped = np.abs(signs @ (score * present).T) / np.where(n_present > 0, n_present, 1)
    exceed = (flipped >= np.abs(observed) - 1e-12).sum(axis=0)
    pvalues = np.where(n_present > 0, (exceed + 1) / (n_resamples + 1), np.nan)
    return observed, pvalues, False


def sign_flip_test(
    rater: Sequence[int], outcome: Sequence[int], *, n_resamples: int = 2000, seed: int | None = 0
) -> SignFlipTestResult:
    """Clustered test of H0 "no preference": flips each rater's net score at random.

    Exact for rater clustering when sides are randomised; enumerates all sign patterns when
    2**n_raters <= n_resamples, otherwise uses ``n_resamples`` random patterns (p >= 1/(B+1)).
    """
    rater_labels, rater_codes = _codes(np.asarray(rater, np.int64))
    outcome = np.asarray(outcome, np.int8)
    score, present = _per_rater_net(np.zeros(rater_codes.size, np.int64), rater_codes, outcome, 1, rater_labels.size)
    observed, pvalues, exact = _sign_flip_pvalues(score, present, int(n_resamples), seed)
    p = float(pvalues[0]) if present.any() else 1.0
    return SignFlipTestResult(float(observed[0]), p, int(present.sum()), int(n_resamples), exact, seed)


# --------------------------------------------------------------------------------------------
# Bradley-Terry with ties and a left-position term, fitted by batched Newton steps
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BradleyTerryResult:
    """Log-strengths (mean zero) of all methods for one question, with bootstrap intervals.

    P(left beats right) has log-odds beta_left - beta_right + left_advantage. With
    ties='davidson', P(tie) is proportional to exp(tie_log_nu + (eta_left + eta_right) / 2).
    rank = 1 + number of methods whose lower bound is above this method's upper bound.
    dominance[i, j] = share of replicates with beta_i > beta_j.
    """

    question: int
    methods: tuple[int, ...]
    scores: np.ndarray
    scores_ci_low: np.ndarray
    scores_ci_high: np.ndarray
    ranks: np.ndarray
    dominance: np.ndarray
    left_advantage: float
    left_advantage_ci: ConfidenceInterval
    tie_log_nu: float | None
    ties: str
    ridge: float
    converged: bool
    failed_resamples: int
    n_resamples: int
    confidence_level: float
    seed: int | None

    def ranking(self) -> list[dict[str, Any]]:
        """Rows sorted by score, for tables."""
        order = np.argsort(-self.scores, kind="stable")
        return [
            {
                "method": self.methods[i], "score": float(self.scores[i]), "rank": int(self.ranks[i]),
                "ci_low": float(self.scores_ci_low[i]), "ci_high": float(self.scores_ci_high[i]),
            }  # fmt: skip
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
    design: np.ndarray, counts: np.ndarray, ridge: float, start: np.ndarray | None = None, max_iter: int = 100,
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


def _bt_results(
    cells: _Cells, full: np.ndarray, replicates: np.ndarray, ties: str, ridge: float, confidence_level: float,
    seed: int | None,
) -> dict[int, BradleyTerryResult]:  # fmt: skip
    methods: list[int] = []
    for spec in cells.comparisons:
        for m in (spec.method_a, spec.method_b):
            if m not in methods:
                methods.append(m)
    if not methods:
        return {}
    design = _bt_design(cells.comparisons, methods, ties)
    n_q, n_c, n_m = cells.questions.size, len(cells.comparisons), len(methods)
    n_resamples = replicates.shape[0]
    # (questions, comparisons, side, outcome) for the full data, (B, questions, ...) for replicates
    full_q = full.reshape(n_c, n_q, 2, 3).transpose(1, 0, 2, 3)
    boot_q = replicates.reshape(n_resamples, n_c, n_q, 2, 3).transpose(0, 2, 1, 3, 4).astype(np.float64)
    theta_full, converged_full = _fit_bt_batch(design, _bt_outcome_counts(full_q, ties), ridge)
    batch = _bt_outcome_counts(boot_q.reshape(n_resamples * n_q, n_c, 2, 3), ties)
    start = np.tile(np.nan_to_num(theta_full), (n_resamples, 1))  # replicates start at the full-data fit
    theta_boot, converged_boot = _fit_bt_batch(design, batch, ridge, start)
    for theta in (theta_full, theta_boot):  # the likelihood ignores a common shift: report mean zero
        theta[:, :n_m] -= theta[:, :n_m].mean(axis=1, keepdims=True)
    theta_boot[~converged_boot] = np.nan
    theta_boot = theta_boot.reshape(n_resamples, n_q, design.shape[2])
    failed = (~converged_boot).reshape(n_resamples, n_q).sum(axis=0)
    results = {}
    for q_index, question in enumerate(cells.questions):
        boot = theta_boot[:, q_index]
        low, high = _percentile_interval(boot, confidence_level)
        scores = theta_full[q_index, :n_m]
        # without intervals (no resamples) the bounds collapse to the point estimates
        lower = np.where(np.isnan(low[:n_m]), scores, low[:n_m])
        upper = np.where(np.isnan(high[:n_m]), scores, high[:n_m])
        ranks = 1 + (lower[None, :] > upper[:, None]).sum(axis=1)
        ok = ~np.isnan(boot[:, 0])
        dominance = np.full((n_m, n_m), np.nan)
        if ok.any():
            dominance = (boot[ok, :n_m, None] > boot[ok, None, :n_m]).mean(axis=0)
        results[int(question)] = BradleyTerryResult(
            int(question), tuple(methods), scores, low[:n_m], high[:n_m], ranks, dominance,
            float(theta_full[q_index, n_m]), ConfidenceInterval(float(low[n_m]), float(high[n_m])),
            float(theta_full[q_index, n_m + 1]) if ties == "davidson" else None, ties, ridge,
            bool(converged_full[q_index]), int(failed[q_index]), n_resamples, confidence_level, seed,
        )  # fmt: skip
    return results


def bradley_terry(
    table: AnswerTable,
    comparisons: Sequence[ComparisonSpec],
    *,
    questions: Sequence[int] | None = None,
    ties: str = "half",
    ridge: float = 0.01,
    n_resamples: int = 2000,
    confidence_level: float = 0.95,
    seed: int | None = 0,
    cluster: str = "two-way",
    weights: str = "multinomial",
) -> dict[int, BradleyTerryResult]:
    """Bradley-Terry log-strengths of every method in ``comparisons``, one fit per question.

    Ties count half a win each way ('half') or follow Davidson (1970) ('davidson'); a
    left-position term absorbs screen-side bias. ``ridge`` is a Gaussian prior N(0, 1/ridge) on
    every parameter, so a method that always wins still gets a finite score. Intervals come from
    the same cluster bootstrap as the win rates; replicates that fail to converge are dropped.
    """
    _choice("ties", ties, _TIE_CHOICES)
    _choice("cluster", cluster, _CLUSTER_CHOICES)
    _choice("weights", weights, _WEIGHT_CHOICES)
    if not ridge > 0:
        raise ValueError(f"ridge: expected a positive number, got {ridge!r}")
    confidence_level = _check_level(confidence_level)
    cells = _cells(table, comparisons, questions)
    replicates = _replicate_counts(cells, int(n_resamples), np.random.default_rng(seed), cluster, weights)
    return _bt_results(cells, _full_counts(cells), replicates, ties, ridge, confidence_level, seed)


# --------------------------------------------------------------------------------------------
# Agreement on overlap pairs
# --------------------------------------------------------------------------------------------


def _alpha_from_units(unit_counts: np.ndarray, unit_weights: np.ndarray) -> np.ndarray:
    """Nominal alpha from per-unit category counts (units with >= 2 values) for weight rows.

    alpha = 1 - (n - 1) · sum_u (m_u² - sum_k n_uk²)/(m_u - 1) / (n² - sum_k n_k²),
    with m_u values in unit u, n = sum_u m_u and n_k = sum_u n_uk (Krippendorff 2011).
    """
    m = unit_counts.sum(axis=1)
    disagreement = (m**2 - (unit_counts**2).sum(axis=1)) / (m - 1)
    n = unit_weights @ m
    n_k = unit_weights @ unit_counts
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = n**2 - (n_k**2).sum(axis=-1)
        alpha = 1 - (n - 1) * (unit_weights @ disagreement) / expected
    return np.where(expected > 0, alpha, np.nan)


def krippendorff_alpha_nominal(unit_counts: Any) -> float:
    """Krippendorff's alpha (nominal) from a units x categories count matrix; units with fewer
    than two values are not pairable and are dropped. NaN when there is no variation at all."""
    counts = np.asarray(unit_counts, float)
    if counts.ndim != 2:
        raise ValueError(f"unit_counts: expected a units x categories matrix, got shape {counts.shape}")
    counts = counts[counts.sum(axis=1) >= 2]
    if counts.shape[0] == 0:
        return float("nan")
    return float(_alpha_from_units(counts, np.ones(counts.shape[0])))


def fleiss_kappa(unit_counts: Any) -> float:
    """Fleiss' kappa from a units x categories count matrix.

    P_i = sum_k n_ik(n_ik - 1) / (n_i(n_i - 1)), kappa = (mean P_i - sum_k p_k²) / (1 - sum_k p_k²).
    With unequal n_i (not in Fleiss 1971) each unit keeps its own n_i; units with n_i < 2 are dropped.
    """
    counts = np.asarray(unit_counts, float)
    counts = counts[counts.sum(axis=1) >= 2]
    if counts.shape[0] == 0:
        return float("nan")
    n_i = counts.sum(axis=1)
    observed = ((counts * (counts - 1)).sum(axis=1) / (n_i * (n_i - 1))).mean()
    shares = counts.sum(axis=0) / counts.sum()
    chance = (shares**2).sum()
    return float((observed - chance) / (1 - chance)) if chance < 1 else float("nan")


@dataclass(frozen=True)
class AgreementResult:
    """Agreement among raters who judged the same pair, on one question (labels: A / tie / B)."""

    question: int
    n_units: int  # pairs with at least two answers
    n_answers: int
    raw_agreement: float  # share of agreeing rater pairs within units
    fleiss_kappa: float
    krippendorff_alpha: float
    krippendorff_alpha_ci: ConfidenceInterval  # bootstrap over units (Hayes & Krippendorff 2007)
    label_shares: tuple[float, float, float]  # A won, tie, B won
    n_resamples: int
    confidence_level: float
    seed: int | None


def agreement(
    table: AnswerTable,
    *,
    question: int,
    comparisons: Sequence[int] | None = None,
    n_resamples: int = 2000,
    confidence_level: float = 0.95,
    seed: int | None = 0,
) -> AgreementResult:
    """Raw agreement, Fleiss' kappa and nominal Krippendorff's alpha over pairs answered by
    two or more raters (the overlap subset), on method-space labels."""
    confidence_level = _check_level(confidence_level)
    keep = ~table.is_check & (table.question == question)
    if comparisons is not None:
        keep &= np.isin(table.comparison, np.asarray(list(comparisons), np.int64))
    _, unit = _codes(table.pair[keep])
    n_units_all = int(unit.max()) + 1 if unit.size else 0
    counts = np.zeros((n_units_all, 3))
    np.add.at(counts, (unit, 1 - table.outcome[keep].astype(np.int64)), 1)
    counts = counts[counts.sum(axis=1) >= 2]
    n_units = counts.shape[0]
    nan_ci = ConfidenceInterval(float("nan"), float("nan"))
    if n_units == 0:
        nan = float("nan")
        return AgreementResult(
            question, 0, 0, nan, nan, nan, nan_ci, (nan, nan, nan), n_resamples, confidence_level, seed
        )
    m = counts.sum(axis=1)
    raw = float(((counts * (counts - 1)).sum(axis=1)).sum() / (m * (m - 1)).sum())
    alpha = float(_alpha_from_units(counts, np.ones(n_units)))
    ci = nan_ci
    if n_resamples > 0:
        rng = np.random.default_rng(seed)
        unit_weights = _cluster_weights(rng, n_units, n_resamples, "multinomial").T.astype(float)
        low, high = _percentile_interval(_alpha_from_units(counts, unit_weights)[:, None], confidence_level)
        ci = ConfidenceInterval(float(low[0]), float(high[0]))
    shares = counts.sum(axis=0) / counts.sum()
    return AgreementResult(
        question, n_units, int(m.sum()), raw, fleiss_kappa(counts), alpha, ci,
        tuple(float(s) for s in shares), n_resamples, confidence_level, seed,
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# Agreement between humans and an automatic metric
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricAgreementResult:
    """Share of decisive human answers where the metric picks the same method."""

    n: int  # decisive answers where the metric is not tied
    n_agree: int
    share: float
    share_ci: ConfidenceInterval  # Wilson (answers treated as independent)
    metric_ties: int
    confidence_level: float


def metric_agreement(
    outcome: Sequence[int], metric_a: Sequence[float], metric_b: Sequence[float], *, confidence_level: float = 0.95
) -> MetricAgreementResult:
    """Does a metric (higher is better) pick the same winner as the humans? Human ties and rows
    with a missing metric are skipped; equal metric values are counted as ``metric_ties``.

    Pass the rows of one question, e.g. ``table.outcome[mask]`` with the CLIP-TS of each side's image.
    """
    outcome = np.asarray(outcome, np.int64)
    a, b = np.asarray(metric_a, float), np.asarray(metric_b, float)
    if not outcome.shape == a.shape == b.shape:
        raise ValueError(
            f"outcome, metric_a, metric_b: expected equal lengths, got {outcome.size}, {a.size}, {b.size}"
        )
    usable = (outcome != TIE) & ~np.isnan(a) & ~np.isnan(b)
    metric_says = np.sign(a - b)
    ties = int((usable & (metric_says == 0)).sum())
    usable &= metric_says != 0
    n = int(usable.sum())
    agree = int((metric_says[usable] == outcome[usable]).sum())
    share = agree / n if n else float("nan")
    return MetricAgreementResult(n, agree, share, wilson_interval(agree, n, confidence_level), ties, confidence_level)


# --------------------------------------------------------------------------------------------
# Rater quality and exclusions
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RaterQuality:
    """Per-rater quality columns, aligned with ``raters``."""

    raters: np.ndarray
    n_answers: np.ndarray
    n_pairs: np.ndarray
    gold_answers: np.ndarray
    gold_correct: np.ndarray
    gold_accuracy: np.ndarray  # NaN without gold answers
    attention_checks: np.ndarray
    attention_failures: np.ndarray
    median_time_ms: np.ndarray  # per pair, NaN when no time was recorded
    decisive_pairs: np.ndarray  # pairs whose decisive answers lean to one side
    left_pairs: np.ndarray  # of those, pairs leaning to the left image
    left_share: np.ndarray
    left_pvalue: np.ndarray  # exact two-sided binomial test of left share = 1/2 over pairs
    study_left_share: float
    cohort_median_time_ms: float

    def rows(self) -> list[dict[str, Any]]:
        names = [f.name for f in dataclasses.fields(self) if isinstance(getattr(self, f.name), np.ndarray)]
        return [{name: getattr(self, name)[i].item() for name in names} for i in range(self.raters.size)]


def rater_quality(table: AnswerTable) -> RaterQuality:
    """Gold accuracy, attention failures, median time per pair and left-side share per rater.

    The side is judged per pair (the questions of one pair are not independent answers): a pair
    counts as "left" when most of its decisive answers chose the left image.
    """
    raters, code = _codes(table.rater)
    n = raters.size
    count = lambda mask: np.bincount(code[mask], minlength=n)  # noqa: E731
    gold_answers, gold_correct = count(table.is_gold), count(table.is_gold & table.check_passed)
    # times, attention checks and the screen side belong to the pair: count each (rater, pair) once
    pair_keys = _pair_keys(code, table.pair)
    unique_keys, first, inverse = np.unique(pair_keys, return_index=True, return_inverse=True)
    pair_rows = np.zeros(code.size, bool)
    pair_rows[first] = True
    attention_pairs = count(pair_rows & table.is_attention)
    failed_pairs = _failed_check_pairs(table, code, n)
    # a pair leans left when most of its decisive answers chose the left image
    side = np.where(table.picked_left, 1.0, np.where(table.outcome != TIE, -1.0, 0.0))
    lean = np.bincount(inverse.reshape(-1), weights=side, minlength=unique_keys.size)
    pair_rater = code[first]
    decisive = np.bincount(pair_rater[lean != 0], minlength=n)
    left = np.bincount(pair_rater[lean > 0], minlength=n)
    medians = np.full(n, np.nan)
    times, time_code = table.time_ms[pair_rows], code[pair_rows]
    has_time = ~np.isnan(times)
    order = np.argsort(time_code[has_time], kind="stable")
    groups = np.split(times[has_time][order], np.searchsorted(time_code[has_time][order], np.arange(1, n)))
    for i, group in enumerate(groups):
        if group.size:
            medians[i] = np.median(group)
    pvalues = _sign_test_pvalues(left, decisive - left)
    with np.errstate(invalid="ignore", divide="ignore"):
        gold_accuracy = np.where(gold_answers > 0, gold_correct / np.maximum(gold_answers, 1), np.nan)
        left_share = np.where(decisive > 0, left / np.maximum(decisive, 1), np.nan)
    total_decisive = decisive.sum()
    return RaterQuality(
        raters, count(np.ones(code.size, bool)), count(pair_rows), gold_answers, gold_correct, gold_accuracy,
        attention_pairs, failed_pairs, medians, decisive, left, left_share, pvalues,
        float(left.sum() / total_decisive) if total_decisive else float("nan"),
        float(np.nanmedian(medians)) if np.isfinite(medians).any() else float("nan"),
    )  # fmt: skip


def _failed_check_pairs(table: AnswerTable, code: np.ndarray, n: int) -> np.ndarray:
    """Attention-check pairs with at least one wrong answer, per rater."""
    failed = table.is_attention & ~table.check_passed
    if not failed.any():
        return np.zeros(n, np.int64)
    keys = np.unique(_pair_keys(code, table.pair)[failed])
    return np.bincount(keys // _pair_span(table.pair), minlength=n)


def _pair_span(pair: np.ndarray) -> int:
    return int(pair.max(initial=0)) - int(pair.min(initial=0)) + 1


def _pair_keys(code: np.ndarray, pair: np.ndarray) -> np.ndarray:
    """One integer per (rater code, pair); rater code = key // _pair_span(pair)."""
    return code.astype(np.int64) * _pair_span(pair) + (pair - pair.min(initial=0))


@dataclass(frozen=True)
class ExclusionRules:
    """Pre-registered exclusion rules; a rule set to None is off.

    - ``min_gold_accuracy``: exclude below this share correct (raters with >= ``min_gold_answers``).
    - ``max_attention_failures``: exclude with more failed attention checks than this.
    - ``left_share_alpha``: exclude when the left-share binomial p-value is below this
      (raters with >= ``min_decisive_for_side`` pairs that lean to one side).
    - ``min_median_time_ms``: exclude when the median time per pair is below this.
    - ``min_median_time_fraction``: exclude below this fraction of the cohort median time.
    """

    min_gold_accuracy: float | None = None
    min_gold_answers: int = 1
    max_attention_failures: int | None = None
    left_share_alpha: float | None = None
    min_decisive_for_side: int = 20
    min_median_time_ms: float | None = None
    min_median_time_fraction: float | None = None


@dataclass(frozen=True)
class ExclusionResult:
    rules: ExclusionRules
    reasons: Mapping[int, tuple[str, ...]]  # rater id -> reasons; only excluded raters

    @property
    def excluded_raters(self) -> tuple[int, ...]:
        return tuple(sorted(self.reasons))

    def counts_by_rule(self) -> dict[str, int]:
        tally: dict[str, int] = {}
        for reasons in self.reasons.values():
            for reason in reasons:
                rule = reason.split(":", 1)[0]
                tally[rule] = tally.get(rule, 0) + 1
        return tally


def apply_exclusion_rules(quality: RaterQuality, rules: ExclusionRules) -> ExclusionResult:
    """Raters that break a rule, each with readable reasons ("rule: value vs threshold")."""
    reasons: dict[int, list[str]] = {}

    def flag(mask: np.ndarray, rule: str, describe) -> None:
        for i in np.flatnonzero(mask):
            reasons.setdefault(int(quality.raters[i]), []).append(f"{rule}: {describe(i)}")

    if rules.min_gold_accuracy is not None:
        enough = quality.gold_answers >= rules.min_gold_answers
        flag(enough & (quality.gold_accuracy < rules.min_gold_accuracy), "min_gold_accuracy",
             lambda i: f"{quality.gold_accuracy[i]:.3f} < {rules.min_gold_accuracy}")  # fmt: skip
    if rules.max_attention_failures is not None:
        flag(quality.attention_failures > rules.max_attention_failures, "max_attention_failures",
             lambda i: f"{quality.attention_failures[i]} > {rules.max_attention_failures}")  # fmt: skip
    if rules.left_share_alpha is not None:
        enough = quality.decisive_pairs >= rules.min_decisive_for_side
        flag(enough & (quality.left_pvalue < rules.left_share_alpha), "left_share_alpha",
             lambda i: f"left share {quality.left_share[i]:.3f}, "
                       f"p = {quality.left_pvalue[i]:.2g} < {rules.left_share_alpha}")  # fmt: skip
    if rules.min_median_time_ms is not None:
        flag(quality.median_time_ms < rules.min_median_time_ms, "min_median_time_ms",
             lambda i: f"{quality.median_time_ms[i]:.0f} ms < {rules.min_median_time_ms}")  # fmt: skip
    if rules.min_median_time_fraction is not None and np.isfinite(quality.cohort_median_time_ms):
        floor = rules.min_median_time_fraction * quality.cohort_median_time_ms
        flag(quality.median_time_ms < floor, "min_median_time_fraction",
             lambda i: f"{quality.median_time_ms[i]:.0f} ms < {floor:.0f} ms")  # fmt: skip
    return ExclusionResult(rules, {rater: tuple(r) for rater, r in sorted(reasons.items())})


# --------------------------------------------------------------------------------------------
# The whole results computation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnalysisSettings:
    """Everything that changes the numbers; echoed in every result and export.

    ``test``: the p-value that gets Holm-adjusted: 'sign_flip' (rater-level randomisation,
    default), 'bootstrap' (inverts the cluster-bootstrap interval) or 'sign' (exact, naive).
    """

    n_resamples: int = 2000
    confidence_level: float = 0.95
    seed: int | None = 0
    alpha: float = 0.05
    cluster: str = "two-way"
    weights: str = "multinomial"
    test: str = "sign_flip"
    ties: str = "half"
    ridge: float = 0.01
    questions: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        _check_level(self.confidence_level)
        _choice("cluster", self.cluster, _CLUSTER_CHOICES)
        _choice("weights", self.weights, _WEIGHT_CHOICES)
        _choice("test", self.test, _TEST_CHOICES)
        _choice("ties", self.ties, _TIE_CHOICES)
        if int(self.n_resamples) < 0:
            raise ValueError(f"n_resamples: expected an integer >= 0, got {self.n_resamples!r}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha: expected a number in (0, 1), got {self.alpha!r}")
        if not self.ridge > 0:
            raise ValueError(f"ridge: expected a positive number, got {self.ridge!r}")

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ComparisonRow:
    """One cell of the results table (a comparison x question)."""

    comparison: int
    label: str
    method_a: int
    method_b: int
    question: int
    estimate: WinRateResult
    wilson_ci: ConfidenceInterval
    sign_test_pvalue: float
    pvalue: float  # of the primary test in settings.test
    adjusted_pvalue: float  # Holm over the declared family; NaN outside it
    in_family: bool
    mark: str

    def as_dict(self) -> dict[str, Any]:
        e = self.estimate
        return {
            "comparison": self.comparison, "label": self.label, "method_a": self.method_a,
            "method_b": self.method_b, "question": self.question, "wins": e.wins, "ties": e.ties,
            "losses": e.losses, "n": e.n, "n_decisive": e.n_decisive, "win_rate": e.win_rate,
            "ci_low": e.win_rate_ci.low, "ci_high": e.win_rate_ci.high,
            "wilson_low": self.wilson_ci.low, "wilson_high": self.wilson_ci.high,
            "tie_rate": e.tie_rate, "tie_rate_ci_low": e.tie_rate_ci.low, "tie_rate_ci_high": e.tie_rate_ci.high,
            "tie_half_score": e.tie_half_score, "tie_half_score_ci_low": e.tie_half_score_ci.low,
            "tie_half_score_ci_high": e.tie_half_score_ci.high, "design_effect": e.design_effect,
            "n_raters": e.n_raters, "n_items": e.n_items, "sign_test_p": self.sign_test_pvalue,
            "p": self.pvalue, "adjusted_p": self.adjusted_pvalue, "in_family": self.in_family,
            "mark": self.mark,
        }  # fmt: skip


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

    def export_rows(self) -> list[dict[str, Any]]:
        """One flat dict per comparison x question with the settings and exclusions, for CSV / JSON."""
        extra = {f"setting_{k}": v for k, v in self.settings.as_dict().items()}
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
    """Everything the results page shows, from one set of bootstrap weights.

    Win rates use the cluster bootstrap in ``settings``; the BT ranking reuses the same
    replicates; agreement uses overlap pairs per question; rater quality is computed on the
    table after exclusions (so the page can show both versions via
    `analyse_with_and_without_exclusions`).
    """
    excluded = tuple(sorted({int(r) for r in excluded_raters}))
    kept = table.without_raters(excluded) if excluded else table
    cells = _cells(kept, comparisons, settings.questions)
    rng = np.random.default_rng(settings.seed)
    replicates = _replicate_counts(cells, int(settings.n_resamples), rng, settings.cluster, settings.weights)
    estimates, boot_win_rate = _win_rate_results(
        cells, int(settings.n_resamples), settings.confidence_level, settings.seed, settings.cluster,
        settings.weights, replicates,
    )  # fmt: skip
    pvalues = _primary_pvalues(cells, estimates, boot_win_rate, settings)
    in_family = np.array([cells.comparisons[i // cells.questions.size].in_family for i in range(cells.n_cells)], bool)
    adjusted = np.full(cells.n_cells, np.nan)
    adjusted[in_family] = holm(pvalues[in_family])
    sign_pvalues = _sign_test_pvalues([e.wins for e in estimates], [e.losses for e in estimates])
    rows = []
    for index, estimate in enumerate(estimates):
        spec = cells.comparisons[index // cells.questions.size]
        rows.append(
            ComparisonRow(
                spec.id, spec.label, spec.method_a, spec.method_b, estimate.question, estimate,
                estimate.wilson_ci(), float(sign_pvalues[index]), float(pvalues[index]),
                float(adjusted[index]), bool(in_family[index]), significance_mark(adjusted[index], settings.alpha),
            )  # fmt: skip
        )
    bt = _bt_results(cells, _full_counts(cells), replicates, settings.ties, settings.ridge,
                     settings.confidence_level, settings.seed)  # fmt: skip
    ids = [c.id for c in comparisons]
    agreements = {
        int(q): agreement(kept, question=int(q), comparisons=ids, n_resamples=settings.n_resamples,
                          confidence_level=settings.confidence_level, seed=settings.seed)  # fmt: skip
        for q in cells.questions
    }
    return AnalysisResult(
        settings, tuple(rows), bt, agreements, rater_quality(kept), excluded, len(kept), len(table) - len(kept)
    )


def _primary_pvalues(cells: _Cells, estimates: list[WinRateResult], boot_win_rate: np.ndarray, settings) -> np.ndarray:
    if settings.test == "sign":
        return _sign_test_pvalues([e.wins for e in estimates], [e.losses for e in estimates])
    if settings.test == "bootstrap":
        p = _bootstrap_pvalue(boot_win_rate)
        return np.where(np.isnan(p), 1.0, p)
    score, present = _per_rater_net(cells.cell, cells.rater, cells.outcome, cells.n_cells, cells.rater_labels.size)
    _, p, _ = _sign_flip_pvalues(score, present, int(settings.n_resamples), settings.seed)
    return np.where(np.isnan(p), 1.0, p)


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
    excluded = set(int(r) for r in excluded_raters) | set(exclusions.excluded_raters if exclusions else ())
    everyone = analyse(table, comparisons, settings)
    reduced = analyse(table, comparisons, settings, excluded_raters=excluded)
    return SensitivityResult(everyone, reduced, exclusions, tuple(sorted(excluded)))
