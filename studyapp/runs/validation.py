"""Everything a run needs, checked before anything is queued."""

from django.core.exceptions import ValidationError

from studyapp.catalog.methods import check_params, check_steps
from studyapp.models import Concept, Method, PromptSet


def check_seed_indices(value) -> list[int]:
    if not isinstance(value, list) or not value:
        raise ValidationError(
            {"seed_indices": f"expected a non-empty list of seed indices, e.g. [0, 1, 2], got {value!r}"}
        )
    bad = [item for item in value if isinstance(item, bool) or not isinstance(item, int) or item < 0]
    if bad:
        raise ValidationError({"seed_indices": f"expected integers >= 0, got {bad[0]!r}"})
    if len(set(value)) != len(value):
        raise ValidationError({"seed_indices": f"expected each seed index once, got {value!r}"})
    return list(value)


def check_concepts(prompt_set: PromptSet | None, concepts: list[Concept]) -> None:
    if prompt_set is None:
        raise ValidationError({"prompt_set": "expected a prompt set, got none"})
    if not prompt_set.prompts.exists():
        raise ValidationError({"prompt_set": f"prompt set {prompt_set.slug!r} has no prompts"})
    if not concepts:
        raise ValidationError({"concepts": "expected at least one concept, got none"})
    if prompt_set.concept_kind:
        wrong = [c.slug for c in concepts if c.kind != prompt_set.concept_kind]
        if wrong:
            kind = prompt_set.concept_kind
            raise ValidationError(
                {"concepts": f"prompt set {prompt_set.slug!r} is for {kind} subjects, got {', '.join(wrong)}"}
            )


def validate_run(
    method: Method, prompt_set: PromptSet | None, concepts: list[Concept], seed_indices, steps, params=None
) -> dict:
    """Check everything a run needs before anything is queued; return the full sampler parameters."""
    if method.kind != Method.Kind.SAMPLER:
        raise ValidationError({"method": f"method {method.name!r} is external: its images are imported, not generated"})
    check_concepts(prompt_set, concepts)
    check_seed_indices(seed_indices)
    check_steps(steps)
    return check_params(method.sampler, method.params if params is None else params, steps)
