"""The sample-size planner of the set-up page: answers needed next to what the study will collect.

The arithmetic is `studyapp.stats.plan_sample_size`; this module applies it to a study. By default it
plans with the crossed variance model the analysis uses (raters, subjects and prompts; the study's fixed
factors excluded), per comparison with that comparison's subjects and prompts, and says where subjects
and prompts cap the power whatever the number of raters. The variance shares come from the form or from
a pilot's answers. The spec's design-effect formula (2.8) stays selectable. The test family for Holm is
every declared comparison times the three questions.
"""

import math
from dataclasses import dataclass

from django import forms
from django.db.models import Count

from studyapp import stats
from studyapp.models import QUESTIONS, Comparison, Pair, Study
from studyapp.stats import SampleSizePlan, plan_sample_size
from studyapp.studies.checks import rater_check_counts
from studyapp.studies.pairs import latest_images, slot_coverage

CROSSED, DESIGN_EFFECT = "crossed", "design effect"
SHARES = ("rater_share", "subject_share", "prompt_share", "subject_prompt_share")


def _share(initial: float, label: str, help_text: str) -> forms.FloatField:
    return forms.FloatField(initial=initial, min_value=0.0, max_value=0.9, label=label, help_text=help_text)


class PlannerForm(forms.Form):
    win_rate = forms.FloatField(
        initial=0.6, min_value=0.51, max_value=0.99, help_text="Decisive win rate to detect (0.6 = 60% of decided)."
    )
    power = forms.FloatField(initial=0.8, min_value=0.5, max_value=0.99)
    alpha = forms.FloatField(
        initial=0.05, min_value=0.001, max_value=0.2, help_text="Family-wise, two-sided; Holm over all tests."
    )
    tie_rate = forms.FloatField(
        initial=0.25, min_value=0.0, max_value=0.9, help_text='Expected share of "Can\'t decide".'
    )
    model = forms.ChoiceField(
        choices=[(CROSSED, "crossed raters x subjects x prompts"), (DESIGN_EFFECT, "design effect (spec 2.8)")],
        initial=CROSSED,
        help_text="The crossed model is the one the results page uses.",
    )
    rater_share = _share(0.05, "Rater share", "Correlation of two answers by one rater (crossed model).")
    subject_share = _share(0.03, "Subject share", "Correlation of two answers on one subject (crossed model).")
    prompt_share = _share(0.03, "Prompt share", "Correlation of two answers on one prompt (crossed model).")
    subject_prompt_share = _share(0.02, "Subject x prompt share", "Extra correlation on one subject and prompt.")
    use_pilot = forms.BooleanField(
        required=False, label="Use this study's answers", help_text="Estimate the shares from the answers so far."
    )
    design_effect = forms.FloatField(
        initial=2.0, min_value=1.0, max_value=10.0, help_text="Variance inflation (design-effect model only)."
    )

    def clean(self):
        cleaned = super().clean()
        if all(isinstance(cleaned.get(name), float) for name in SHARES) and sum(cleaned[n] for n in SHARES) >= 1:
            raise forms.ValidationError("The four shares must add up to less than 1 (an answer's whole variance).")
        return cleaned

    def plan_arguments(self) -> dict:
        return {name: self.cleaned_data[name] for name in self.fields if name != "use_pilot"}


@dataclass(frozen=True)
class ComparisonPlan:
    comparison: Comparison
    usable_slots: int  # pairs a build makes: slots that both methods have
    pairs_built: int
    answers_planned: int  # answers per question this design collects
    plan: SampleSizePlan
    design: stats.CrossedDesign | None = None  # crossed model only
    half_width_planned: float = float("nan")  # the 95% interval's half-width at answers_planned (crossed)

    @property
    def half_width_label(self) -> str:
        """'±4.2 points' of win rate, or a dash where nothing is planned yet."""
        if math.isnan(self.half_width_planned):
            return "–"
        if self.half_width_planned >= 0.5:
            return "over ±50 points: too few subjects or prompts"
        return f"±{100 * self.half_width_planned:.1f} points"

    @property
    def answers_needed(self) -> int | None:
        """None where no number of answers is enough: subjects and prompts cap the power."""
        return self.plan.n_total

    @property
    def short_by(self) -> int | None:
        return None if self.answers_needed is None else max(0, self.answers_needed - self.answers_planned)

    @property
    def enough(self) -> bool:
        return self.short_by == 0

    @property
    def ratings_per_pair_needed(self) -> int | None:
        if self.answers_needed is None or not self.usable_slots:
            return None
        return math.ceil(self.answers_needed / self.usable_slots)


@dataclass(frozen=True)
class StudyPlan:
    plan: SampleSizePlan  # the comparison needing the most answers (the generic plan without comparisons)
    tests: int
    comparisons: list[ComparisonPlan]
    regular_per_rater: int  # a rater's quota less the gold and attention items mixed in

    @property
    def answers_planned(self) -> int:
        return sum(row.answers_planned for row in self.comparisons)

    @property
    def raters_needed(self) -> int:
        """Raters who finish their quota needed to collect the planned answers.

        Nobody rates a pair twice, so a rater answers at most as many regular pairs as there are.
        """
        per_rater = min(self.regular_per_rater, sum(row.usable_slots for row in self.comparisons))
        return math.ceil(self.answers_planned / per_rater) if per_rater else 0


def answers_planned(study: Study, pairs: int) -> int:
    """Answers per question for `pairs` pairs: every pair rated ratings_per_pair times, the overlap share more."""
    overlap = round(pairs * study.overlap_fraction)
    extra = max(0, study.overlap_ratings - study.ratings_per_pair)
    return pairs * study.ratings_per_pair + overlap * extra


def regular_per_rater(study: Study) -> int:
    return max(0, study.pairs_per_rater - sum(rater_check_counts(study)))


def study_random_factors(study: Study) -> tuple[str, ...]:
    fixed = study.fixed_factors if isinstance(study.fixed_factors, list) else []
    return tuple(f for f in stats.FACTORS if f not in fixed)


def shared_components(win_rate: float, shares: dict[str, float]) -> stats.VarianceComponents:
    """Covariances from correlations: each share of one answer's variance w(1 - w) under the alternative."""
    variance = win_rate * (1 - win_rate)
    return stats.VarianceComponents(
        rater=shares["rater_share"] * variance,
        subject=shares["subject_share"] * variance,
        prompt=shares["prompt_share"] * variance,
        subject_prompt=shares["subject_prompt_share"] * variance,
    )


def comparison_design(study: Study, comparison: Comparison, tie_rate: float, n_comparisons: int):
    """Subjects and prompts of the comparison's usable slots; each rater's decided answers on it."""
    slots = latest_images(comparison.method_a_id).keys() & latest_images(comparison.method_b_id).keys()
    subjects, prompts = {key[0] for key in slots}, {key[1] for key in slots}
    # A rater's regular pairs spread over the comparisons, and nobody rates a pair twice.
    per_rater = min(regular_per_rater(study) / max(n_comparisons, 1), len(slots)) * (1 - tie_rate)
    return stats.CrossedDesign(max(len(subjects), 1), max(len(prompts), 1), max(per_rater, 1.0))


def study_plan(
    study: Study,
    *,
    win_rate=0.6,
    power=0.8,
    alpha=0.05,
    tie_rate=0.25,
    model=CROSSED,
    design_effect=2.0,
    components: stats.VarianceComponents | None = None,
    **shares,
) -> StudyPlan:
    """The plan per comparison. Crossed: ``components`` (a pilot's) or the ``shares`` of the form."""
    comparisons = list(study.comparisons.select_related("method_a", "method_b", "study"))
    tests = max(1, len(comparisons) * len(QUESTIONS))
    common = {"power": power, "alpha": alpha, "n_comparisons": tests, "tie_rate": tie_rate}
    generic = plan_sample_size(win_rate, design_effect=design_effect, **common)
    if model == CROSSED and components is None:
        components = shared_components(
            win_rate, {name: shares.get(name, PlannerForm.base_fields[name].initial) for name in SHARES}
        )
    built = _pairs_built(study)
    rows = []
    for comparison in comparisons:
        slots = slot_coverage(comparison).complete
        planned = answers_planned(study, slots)
        row = ComparisonPlan(comparison, slots, built.get(comparison.pk, 0), planned, generic)
        if model == CROSSED:
            row = _crossed_row(row, study, win_rate, components, common, len(comparisons))
        rows.append(row)
    return StudyPlan(_hardest(rows, generic), tests, rows, regular_per_rater(study))


def _crossed_row(row: ComparisonPlan, study, win_rate, components, common, n_comparisons) -> ComparisonPlan:
    design = comparison_design(study, row.comparison, common["tie_rate"], n_comparisons)
    random_factors = study_random_factors(study)
    plan = plan_sample_size(win_rate, components=components, design=design, random_factors=random_factors, **common)
    decided = row.answers_planned * (1 - common["tie_rate"])
    half_width = float("nan")
    if decided >= 1:
        half_width = stats.crossed_half_width(decided, win_rate, components, design, random_factors)
    return ComparisonPlan(
        row.comparison, row.usable_slots, row.pairs_built, row.answers_planned, plan, design, half_width
    )


def _hardest(rows: list[ComparisonPlan], generic: SampleSizePlan) -> SampleSizePlan:
    if not rows:
        return generic
    return max((row.plan for row in rows), key=lambda plan: math.inf if plan.n_total is None else plan.n_total)


def pilot_components(estimates) -> stats.VarianceComponents | None:
    """Components from a pilot's per-cell estimates, or None while it has no decided answers."""
    try:
        return stats.VarianceComponents.from_results(list(estimates))
    except ValueError:
        return None


def _pairs_built(study: Study) -> dict[int, int]:
    rows = study.pairs.filter(kind=Pair.Kind.REGULAR).values("comparison_id").annotate(total=Count("id"))
    return {row["comparison_id"]: row["total"] for row in rows}
