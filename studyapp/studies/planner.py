"""The sample-size planner of the set-up page: answers needed (spec 2.8) next to what the study will collect.

The arithmetic is `studyapp.stats.plan_sample_size`; this module applies it to a study. The test family
for Holm is every declared comparison times the three questions.
"""

import math
from dataclasses import dataclass

from django import forms
from django.db.models import Count

from studyapp.models import QUESTIONS, Comparison, Pair, Study
from studyapp.stats import SampleSizePlan, plan_sample_size
from studyapp.studies.checks import rater_check_counts
from studyapp.studies.pairs import slot_coverage


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
    design_effect = forms.FloatField(
        initial=2.0, min_value=1.0, max_value=10.0, help_text="Variance inflation from clustering (1 = none)."
    )

    def plan_arguments(self) -> dict:
        return {name: self.cleaned_data[name] for name in self.fields}


@dataclass(frozen=True)
class ComparisonPlan:
    comparison: Comparison
    usable_slots: int  # pairs a build makes: slots that both methods have
    pairs_built: int
    answers_planned: int  # answers per question this design collects
    answers_needed: int

    @property
    def short_by(self) -> int:
        return max(0, self.answers_needed - self.answers_planned)

    @property
    def enough(self) -> bool:
        return self.short_by == 0

    @property
    def ratings_per_pair_needed(self) -> int | None:
        return math.ceil(self.answers_needed / self.usable_slots) if self.usable_slots else None


@dataclass(frozen=True)
class StudyPlan:
    plan: SampleSizePlan
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


def study_plan(study: Study, *, win_rate=0.6, power=0.8, alpha=0.05, tie_rate=0.25, design_effect=2.0) -> StudyPlan:
    comparisons = list(study.comparisons.select_related("method_a", "method_b", "study"))
    tests = max(1, len(comparisons) * len(QUESTIONS))
    plan = plan_sample_size(
        win_rate, power=power, alpha=alpha, n_comparisons=tests, tie_rate=tie_rate, design_effect=design_effect
    )
    built = _pairs_built(study)
    rows = []
    for comparison in comparisons:
        slots = slot_coverage(comparison).complete
        planned = answers_planned(study, slots)
        rows.append(ComparisonPlan(comparison, slots, built.get(comparison.pk, 0), planned, plan.n_total))
    return StudyPlan(plan, tests, rows, regular_per_rater(study))


def _pairs_built(study: Study) -> dict[int, int]:
    rows = study.pairs.filter(kind=Pair.Kind.REGULAR).values("comparison_id").annotate(total=Count("id"))
    return {row["comparison_id"]: row["total"] for row in rows}
