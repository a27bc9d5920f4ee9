"""Hyper-parameter sweeps: one method and one run per grid point, all validated before anything is queued."""

from django.core.exceptions import ValidationError
from django.db import transaction

from studyapp.catalog.methods import check_params, check_sampler, check_steps
from studyapp.models import Concept, GenerationRun, Method, Sweep
from studyapp.runs.launch import create_run
from studyapp.runs.validation import check_concepts, check_seed_indices

MAX_POINTS = 200


def presets() -> dict[str, list[dict]]:
    """Each sampler's preset grid: the paper's Section 4 grids where it states one (step windows on its 50 steps)."""
    from generation.samplers import SWEEP_PRESETS

    return SWEEP_PRESETS


def grid_of(sampler: str, preset: str, grid, steps=None) -> list[dict]:
    """The grid points as given (the preset's when no grid is given), each checked against the sampler
    (and its step windows against ``steps`` when given)."""
    check_sampler(sampler)
    if grid:
        points = grid
    elif preset:
        if preset not in presets():
            raise ValidationError({"preset": f"expected one of {', '.join(presets())}, got {preset!r}"})
        points = presets()[preset]
    else:
        raise ValidationError({"grid": "expected a preset or a grid (a list of parameter objects), got neither"})
    if not isinstance(points, list) or not all(isinstance(point, dict) for point in points):
        raise ValidationError({"grid": f"expected a list of parameter objects, got {points!r}"})
    if not 1 <= len(points) <= MAX_POINTS:
        raise ValidationError({"grid": f"expected 1 to {MAX_POINTS} grid points, got {len(points)}"})
    for point in points:
        try:
            check_params(sampler, point, steps)
        except ValidationError as exc:
            raise ValidationError({"grid": f"grid point {point}: {' '.join(exc.messages)}"}) from None
    return [dict(point) for point in points]


def _value_slug(value) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).lower().replace(".", "p").replace("-", "m")


def point_name(sweep_name: str, point: dict) -> str:
    """A method name that says which point it is, e.g. 'dog-mixed-w_s3p5-w_c3p5'."""
    suffix = "-".join(f"{key}{_value_slug(value)}" for key, value in point.items())
    return f"{sweep_name}-{suffix}" if suffix else sweep_name


def validate_sweep(sweep: Sweep, concepts: list[Concept]) -> list[dict]:
    """Check the whole sweep (grid, concepts, prompts, seeds, steps, method names); return its grid."""
    check_steps(sweep.steps)
    points = grid_of(sweep.sampler, sweep.preset, sweep.grid, sweep.steps)
    check_concepts(sweep.prompt_set, concepts)
    check_seed_indices(sweep.seed_indices)
    names = [point_name(sweep.name, point) for point in points]
    if len(set(names)) != len(names):
        raise ValidationError({"grid": "expected distinct grid points, got repeated ones"})
    too_long = [name for name in names if len(name) > Method._meta.get_field("name").max_length]
    if too_long:
        raise ValidationError({"name": f"method name {too_long[0]!r} is too long: choose a shorter sweep name"})
    for name, point in zip(names, points, strict=True):
        existing = Method.objects.filter(name=name).first()
        if existing and not _same_method(existing, sweep, point):
            raise ValidationError({"name": f"method {name!r} exists with other settings: choose another sweep name"})
    return points


def _same_method(method: Method, sweep: Sweep, point: dict) -> bool:
    return (
        method.kind == Method.Kind.SAMPLER
        and method.sampler == sweep.sampler
        and method.params == check_params(sweep.sampler, point)
        and method.base_model == sweep.base_model
        and method.personalization == sweep.personalization
        and method.steps == sweep.steps
    )


@transaction.atomic
def launch_sweep(sweep: Sweep) -> list[GenerationRun]:
    """Create one method and one run per grid point and queue them (tasks leave on commit)."""
    concepts = list(sweep.concepts.all())
    points = validate_sweep(sweep, concepts)
    created = []
    for point in points:
        method, _ = Method.objects.get_or_create(
            name=point_name(sweep.name, point),
            defaults={
                "sampler": sweep.sampler,
                "params": check_params(sweep.sampler, point),
                "base_model": sweep.base_model,
                "personalization": sweep.personalization,
                "steps": sweep.steps,
                "description": f"Sweep {sweep.name}: {sweep.sampler} with {point}.",
            },
        )
        created.append(
            create_run(
                method=method,
                prompt_set=sweep.prompt_set,
                concepts=concepts,
                seed_indices=sweep.seed_indices,
                steps=sweep.steps,
                label=f"{method.name}",
                sweep=sweep,
            )
        )
    return created
