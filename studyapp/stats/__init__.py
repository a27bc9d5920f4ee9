"""Statistics for pairwise human-evaluation studies: pure numpy/scipy over answer arrays, no Django.

The web side turns querysets into an `AnswerTable` and calls `analyse`. One module per topic:

- `answers`: the answer table (rater, subject, prompt, outcome in method space) and comparisons.
- `crossed_variance`: the variance of a ratio estimator under crossed random factors (raters x
  subjects x prompts), with Satterthwaite degrees of freedom. How the win-rate interval is computed.
- `intervals`: Wilson and t intervals and the p-values that invert them.
- `win_rates`: per comparison x question: counts, the interval, its p-value, fallbacks, warnings.
- `bootstrap`: the pigeonhole bootstrap, the selectable alternative.
- `significance`: Holm (and its per-test levels), Bonferroni, Benjamini-Hochberg, marks, sign tests.
- `analysis`: the whole results table with settings, adjusted intervals and marks.
- `bradley_terry`, `agreement`, `rater_quality`, `metrics` (A - B differences, human-metric
  agreement), `breakdowns` (per subject, per prompt), `planning` (sample sizes), `simulation`
  (studies with known truth, for tests and benchmarks).

docs/statistics.md explains each number and why the default is what it is.
"""

from studyapp.stats.agreement import AgreementResult, agreement, fleiss_kappa, krippendorff_alpha_nominal
from studyapp.stats.analysis import (
    AnalysisResult,
    AnalysisSettings,
    ComparisonRow,
    SensitivityResult,
    analyse,
    analyse_with_and_without_exclusions,
    describe_procedure,
)
from studyapp.stats.answers import A_WINS, B_WINS, FACTORS, TIE, AnswerTable, ComparisonSpec
from studyapp.stats.bradley_terry import BradleyTerryResult, bradley_terry
from studyapp.stats.breakdowns import BreakdownRow, win_rate_breakdown
from studyapp.stats.crossed_variance import ClusterLayout, RatioVariance, ratio_variance
from studyapp.stats.intervals import ConfidenceInterval, wilson_interval
from studyapp.stats.metrics import MetricAgreementResult, MetricDifferenceResult, metric_agreement, metric_difference
from studyapp.stats.planning import (
    CrossedDesign,
    SampleSizePlan,
    VarianceComponents,
    WidthPlan,
    crossed_half_width,
    crossed_standard_error,
    plan_for_width,
    plan_sample_size,
)
from studyapp.stats.rater_quality import (
    ExclusionResult,
    ExclusionRules,
    RaterQuality,
    apply_exclusion_rules,
    rater_quality,
)
from studyapp.stats.significance import (
    SignFlipTestResult,
    SignTestResult,
    benjamini_hochberg,
    bonferroni,
    holm,
    holm_levels,
    sign_flip_test,
    sign_test,
    significance_mark,
)
from studyapp.stats.validation import PROCEDURES
from studyapp.stats.win_rates import MIN_CLUSTERS, WinRateResult, win_rate

__all__ = [
    "A_WINS",
    "B_WINS",
    "FACTORS",
    "MIN_CLUSTERS",
    "PROCEDURES",
    "TIE",
    "AgreementResult",
    "AnalysisResult",
    "AnalysisSettings",
    "AnswerTable",
    "BradleyTerryResult",
    "BreakdownRow",
    "ClusterLayout",
    "ComparisonRow",
    "ComparisonSpec",
    "ConfidenceInterval",
    "CrossedDesign",
    "ExclusionResult",
    "ExclusionRules",
    "MetricAgreementResult",
    "MetricDifferenceResult",
    "RaterQuality",
    "RatioVariance",
    "SampleSizePlan",
    "SensitivityResult",
    "SignFlipTestResult",
    "SignTestResult",
    "VarianceComponents",
    "WidthPlan",
    "WinRateResult",
    "agreement",
    "analyse",
    "analyse_with_and_without_exclusions",
    "apply_exclusion_rules",
    "benjamini_hochberg",
    "bonferroni",
    "bradley_terry",
    "crossed_half_width",
    "crossed_standard_error",
    "describe_procedure",
    "fleiss_kappa",
    "holm",
    "holm_levels",
    "krippendorff_alpha_nominal",
    "metric_agreement",
    "metric_difference",
    "plan_for_width",
    "plan_sample_size",
    "rater_quality",
    "ratio_variance",
    "sign_flip_test",
    "sign_test",
    "significance_mark",
    "wilson_interval",
    "win_rate",
    "win_rate_breakdown",
]
