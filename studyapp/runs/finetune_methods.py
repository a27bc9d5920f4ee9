"""Methods over a finished fine-tune: one per sampler with its defaults, or the fields of a sweep over it.

The methods point at the result where the loaders read it (the run's `model/` folder under MEDIA_ROOT)
as their personalization, on the run's base model; they are checked by the same `validate_method` as
the admin's method form.
"""

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction

from studyapp.catalog.methods import sampler_names, validate_method
from studyapp.models import FineTuneRun, Method
from studyapp.runs.finetune import output_location

DEFAULT_STEPS = 50


@dataclass(frozen=True)
class MadeMethods:
    created: list[Method]
    existing: list[Method]


def method_prefix(run: FineTuneRun) -> str:
    return run.label or f"ft{run.pk}-{run.concept.slug}"


def personalization_of(run: FineTuneRun) -> str:
    if run.state != FineTuneRun.State.DONE or output_location(run) is None:
        raise ValidationError(f"{run} is {run.state}: methods can be made once it is done")
    return str(output_location(run))


def method_name(run: FineTuneRun, sampler: str) -> str:
    return f"{method_prefix(run)}-{sampler}"


@transaction.atomic
def create_methods(run: FineTuneRun, samplers=None, steps: int = DEFAULT_STEPS) -> MadeMethods:
    """One method per sampler (all of them by default) over the run's result; a method already made over
    this result is kept, one of that name with other settings is refused before anything is saved."""
    personalization = personalization_of(run)
    wanted = list(samplers or sampler_names())
    created, existing, pending = [], [], []
    for sampler in wanted:
        name = method_name(run, sampler)
        found = Method.objects.filter(name=name).first()
        if found is not None:
            if (found.sampler, found.personalization, found.base_model) != (sampler, personalization, run.base_model):
                raise ValidationError(f"method {name!r} exists with other settings: give the fine-tune another label")
            existing.append(found)
            continue
        method = Method(
            name=name,
            sampler=sampler,
            params={},
            base_model=run.base_model,
            personalization=personalization,
            steps=steps,
            description=f"{sampler} with its defaults on fine-tune {run.pk} ({run.method}, {run.concept.slug}).",
        )
        validate_method(method)
        pending.append(method)
    for method in pending:
        method.save()
        created.append(method)
    return MadeMethods(created, existing)


def sweep_initial(run: FineTuneRun) -> dict:
    """The fields of a new sweep over the run's result, as the admin's sweep form takes them (GET values)."""
    return {
        "name": f"{method_prefix(run)}-sweep"[:80],
        "base_model": run.base_model,
        "personalization": personalization_of(run),
        "concepts": str(run.concept_id),
        "steps": str(DEFAULT_STEPS),
    }
