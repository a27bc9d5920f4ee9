"""Sample sizes: how many answers a comparison x question needs, under the analysis's own variance model.

The variance of the decisive win rate ŵ over N decided answers is the same crossed random-factor
sum that `crossed_variance` estimates,

    Var(ŵ) = σ²_R (1 + m) / N + σ²_S (1/G_S + 1/N) + σ²_P (1/G_P + 1/N) + σ²_SP (1/(G_S G_P) + 1/N) + σ²_e / N,

for G_S subjects, G_P prompts and m decided answers per rater in the cell, answers spread at
random over subjects and prompts (σ² are covariances of two answers sharing only that factor;
σ²_e is the rest of an answer's variance w(1 - w)). Subjects and prompts put a floor under it:
more raters never make σ²_S / G_S smaller, so a target width can be out of reach, and the planner
says so. The reference is a t with Satterthwaite degrees of freedom computed from the same parts.

`VarianceComponents.from_results` takes the components from a pilot's analysis. Without them,
`plan_sample_size` falls back to a design effect (spec 2.8): n_dec·DEFF / (1 - tie_rate).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from studyapp.stats.answers import FACTORS
from studyapp.stats.validation import check_level, check_random_factors

_MAX_DECIDED = 10**7


@dataclass(frozen=True)
class VarianceComponents:
    """Covariance of two decided answers' "A won" that share only the named factor(s).

    ``answer`` is the rest of one answer's variance; None means w(1 - w) minus the others.
    """

    rater: float = 0.0
    subject: float = 0.0
    prompt: float = 0.0
    subject_prompt: float = 0.0
    answer: float | None = None

    def __post_init__(self) -> None:
        for name in ("rater", "subject", "prompt", "subject_prompt"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"{name}: expected a non-negative number, got {value!r}")

    @classmethod
    def from_results(cls, results: Sequence) -> VarianceComponents:
        """Averages (weighted by decided answers) of the components estimated in each cell of a pilot
        (`WinRateResult.answer_covariances`); negative estimates count as zero."""
        usable = [r for r in results if r.n_decisive > 0 and r.answer_covariances]
        if not usable:
            raise ValueError("results: expected at least one cell with decided answers")
        weights = np.array([r.n_decisive for r in usable], float)

        def mean(name: str) -> float:
            values = np.array([r.answer_covariances.get(name, 0.0) for r in usable], float)
            return float(max(0.0, np.average(np.nan_to_num(values), weights=weights)))

        return cls(mean("rater"), mean("subject"), mean("prompt"), mean("subject×prompt"))

    def answer_variance(self, win_rate: float) -> float:
        if self.answer is not None:
            return float(self.answer)
        shared = self.rater + self.subject + self.prompt + self.subject_prompt
        return max(win_rate * (1 - win_rate) - shared, 0.0)


@dataclass(frozen=True)
class CrossedDesign:
    """The planned layout of one comparison x question."""

    n_subjects: int
    n_prompts: int
    decided_per_rater: float  # m: decided answers each rater gives this comparison x question

    def __post_init__(self) -> None:
        if int(self.n_subjects) < 1 or int(self.n_prompts) < 1:
            raise ValueError(f"n_subjects, n_prompts: expected >= 1, got {self.n_subjects}, {self.n_prompts}")
        if not self.decided_per_rater > 0:
            raise ValueError(f"decided_per_rater: expected a positive number, got {self.decided_per_rater!r}")


def crossed_standard_error(
    n_decided: float,
    win_rate: float,
    components: VarianceComponents,
    design: CrossedDesign,
    random_factors: Sequence[str] = FACTORS,
) -> tuple[float, float]:
    """(SE of ŵ, Satterthwaite degrees of freedom) for ``n_decided`` decided answers in one cell."""
    random = check_random_factors(random_factors)
    n, m = float(n_decided), float(design.decided_per_rater)
    g_s, g_p, g_r = float(design.n_subjects), float(design.n_prompts), max(n / m, 1.0)
    answer = components.answer_variance(win_rate)
    parts = {
        "rater": components.rater * (1 + m) / n if "rater" in random else 0.0,
        "subject": components.subject * (1 / g_s + 1 / n) if "subject" in random else 0.0,
        "prompt": components.prompt * (1 / g_p + 1 / n) if "prompt" in random else 0.0,
    }
    interaction = components.subject_prompt * (1 / (g_s * g_p) + 1 / n) if {"subject", "prompt"} & set(random) else 0
    variance = sum(parts.values()) + interaction + answer / n
    noise = (answer + components.rater * m) / n
    shares = {
        "rater": components.rater / (components.rater + (answer + components.subject + components.prompt) / m),
        "subject": components.subject / (components.subject + components.subject_prompt / g_p + g_s * noise),
        "prompt": components.prompt / (components.prompt + components.subject_prompt / g_s + g_p * noise),
    }
    clusters = {"rater": g_r, "subject": g_s, "prompt": g_p}
    denominator = (variance - sum(parts.values())) ** 2 / max(n - sum(c - 1 for c in clusters.values()) - 1, 1)
    for name, part in parts.items():
        if part > 0:
            denominator += (part / shares[name]) ** 2 / max(clusters[name] - 1, 1)
    df = variance**2 / denominator if denominator > 0 else np.inf
    return float(np.sqrt(variance)), float(max(df, 1.0))


def crossed_half_width(
    n_decided: float,
    win_rate: float,
    components: VarianceComponents,
    design: CrossedDesign,
    random_factors: Sequence[str] = FACTORS,
    confidence_level: float = 0.95,
) -> float:
    """Half-width t_df · SE of the interval that ``n_decided`` decided answers in one cell give."""
    se, df = crossed_standard_error(n_decided, win_rate, components, design, random_factors)
    return float(sps.t.ppf(0.5 + check_level(confidence_level) / 2, df) * se)


@dataclass(frozen=True)
class WidthPlan:
    """Decided answers per comparison x question for a target interval half-width."""

    half_width: float
    confidence_level: float
    win_rate: float
    tie_rate: float
    reachable: bool
    n_decisive: int | None
    n_total: int | None
    raters: int | None  # raters giving design.decided_per_rater decided answers each
    promised_half_width: float  # at n_decisive (NaN when unreachable)
    smallest_half_width: float  # with unlimited raters: the floor the subjects and prompts set
    standard_error: float
    df: float


def plan_for_width(
    half_width: float,
    *,
    components: VarianceComponents,
    design: CrossedDesign,
    win_rate: float = 0.5,
    confidence_level: float = 0.95,
    tie_rate: float = 0.0,
    random_factors: Sequence[str] = FACTORS,
) -> WidthPlan:
    """Smallest N (decided answers per cell) whose t interval half-width, t_df · SE, is at most ``half_width``."""
    if not 0 < half_width < 0.5:
        raise ValueError(f"half_width: expected a number in (0, 0.5), got {half_width!r}")
    _check_rates(win_rate, tie_rate, allow_half=True)
    level = check_level(confidence_level)

    def width(n: float) -> tuple[float, float, float]:
        se, df = crossed_standard_error(n, win_rate, components, design, random_factors)
        return sps.t.ppf(0.5 + level / 2, df) * se, se, df

    floor = width(_MAX_DECIDED)[0]
    if floor > half_width:
        return WidthPlan(
            half_width,
            level,
            win_rate,
            tie_rate,
            False,
            None,
            None,
            None,
            float("nan"),
            floor,
            float("nan"),
            float("nan"),
        )
    n = _smallest(lambda n: width(n)[0] <= half_width)
    promised, se, df = width(n)
    return WidthPlan(
        half_width,
        level,
        win_rate,
        tie_rate,
        True,
        n,
        int(np.ceil(n / (1 - tie_rate) - 1e-9)),
        int(np.ceil(n / design.decided_per_rater - 1e-9)),
        promised,
        floor,
        se,
        df,
    )


def _smallest(enough, start: int = 4) -> int:
    """Smallest integer n >= start with enough(n), for a predicate that stays true once true."""
    high = start
    while not enough(high):
        high *= 2
        if high > _MAX_DECIDED:
            return _MAX_DECIDED
    low = max(start, high // 2)
    if enough(low):
        return low
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if enough(middle) else (middle, high)
    return high


@dataclass(frozen=True)
class SampleSizePlan:
    """Answers needed per comparison and question to detect ``win_rate`` with ``power``.

    ``method`` is 'design effect' (spec 2.8: inflate the binomial size by ``design_effect``) or
    'crossed' (the crossed variance model; ``design_effect`` is then what the model implies).
    """

    win_rate: float
    power: float
    alpha: float
    n_comparisons: int
    tie_rate: float
    design_effect: float
    alpha_per_test: float
    n_decisive: int | None
    n_total: int | None
    method: str = "design effect"
    reachable: bool = True
    largest_power: float = 1.0  # with unlimited raters (crossed: subjects and prompts cap it)
    standard_error: float = float("nan")
    df: float = float("inf")


def plan_sample_size(
    win_rate: float,
    *,
    power: float = 0.8,
    alpha: float = 0.05,
    n_comparisons: int = 1,
    tie_rate: float = 0.0,
    design_effect: float = 1.0,
    components: VarianceComponents | None = None,
    design: CrossedDesign | None = None,
    random_factors: Sequence[str] = FACTORS,
) -> SampleSizePlan:
    """Answers per comparison and question for a two-sided test at alpha / n_comparisons.

    Holm over k tests is planned at its first step, alpha / k (the Bonferroni level), which is
    what the smallest p-value must beat. Without ``components``:
    n_dec = [z_{1-a/2}·0.5 + z_{power}·sqrt(w(1-w))]² / (w - 0.5)², N = n_dec·DEFF / (1 - tie_rate).
    With ``components`` and ``design``: the smallest n_dec with Φ(|w - 1/2| / SE - t_{df, 1-a/2}) >= power.
    """
    _check_rates(win_rate, tie_rate, allow_half=False)
    if not 0 < power < 1:
        raise ValueError(f"power: expected a number in (0, 1), got {power!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha: expected a number in (0, 1), got {alpha!r}")
    if int(n_comparisons) < 1:
        raise ValueError(f"n_comparisons: expected an integer >= 1, got {n_comparisons!r}")
    alpha_per_test = alpha / int(n_comparisons)
    if components is not None:
        if design is None:
            raise ValueError("design: expected a CrossedDesign with the components")
        return _crossed_plan(win_rate, power, alpha, int(n_comparisons), tie_rate, components, design, random_factors)
    if design_effect < 1:
        raise ValueError(f"design_effect: expected a number >= 1, got {design_effect!r}")
    z_alpha = sps.norm.ppf(1 - alpha_per_test / 2)
    z_power = sps.norm.ppf(power)
    n_decisive = (z_alpha * 0.5 + z_power * np.sqrt(win_rate * (1 - win_rate))) ** 2 / (win_rate - 0.5) ** 2
    n_total = n_decisive * design_effect / (1 - tie_rate)
    return SampleSizePlan(
        win_rate,
        power,
        alpha,
        int(n_comparisons),
        tie_rate,
        design_effect,
        alpha_per_test,
        int(np.ceil(n_decisive - 1e-9)),
        int(np.ceil(n_total - 1e-9)),
    )


def _crossed_plan(win_rate, power, alpha, n_comparisons, tie_rate, components, design, random_factors):
    alpha_per_test = alpha / n_comparisons
    effect = abs(win_rate - 0.5)

    def achieved(n: float) -> tuple[float, float, float]:
        se, df = crossed_standard_error(n, win_rate, components, design, random_factors)
        return float(sps.norm.cdf(effect / se - sps.t.ppf(1 - alpha_per_test / 2, df))), se, df

    largest = achieved(_MAX_DECIDED)[0]
    if largest < power:
        return SampleSizePlan(
            win_rate,
            power,
            alpha,
            n_comparisons,
            tie_rate,
            float("nan"),
            alpha_per_test,
            None,
            None,
            "crossed",
            False,
            largest,
        )
    n = _smallest(lambda n: achieved(n)[0] >= power)
    _, se, df = achieved(n)
    deff = se**2 / (win_rate * (1 - win_rate) / n)
    return SampleSizePlan(
        win_rate,
        power,
        alpha,
        n_comparisons,
        tie_rate,
        deff,
        alpha_per_test,
        n,
        int(np.ceil(n / (1 - tie_rate) - 1e-9)),
        "crossed",
        True,
        largest,
        se,
        df,
    )


def _check_rates(win_rate: float, tie_rate: float, *, allow_half: bool) -> None:
    if not 0 < win_rate < 1 or (win_rate == 0.5 and not allow_half):
        other = "" if allow_half else " other than 0.5"
        raise ValueError(f"win_rate: expected a number in (0, 1){other}, got {win_rate!r}")
    if not 0 <= tie_rate < 1:
        raise ValueError(f"tie_rate: expected a number in [0, 1), got {tie_rate!r}")
