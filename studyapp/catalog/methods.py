"""A method's sampler settings, checked by the generation library's own rules.

The sampler names, their parameters and the step limit are defined once, in `generation`; these
functions only turn its errors into Django ValidationErrors keyed by the field they concern, for the
admin, the API, runs, sweeps and the import commands alike.
"""

from django.core.exceptions import ValidationError

from studyapp.models import Method


def check_sampler(sampler: str) -> str:
    from generation.samplers import SAMPLER_NAMES

    if sampler not in SAMPLER_NAMES:
        raise ValidationError({"sampler": f"expected one of {', '.join(SAMPLER_NAMES)}, got {sampler!r}"})
    return sampler


def check_params(sampler: str, params, steps=None) -> dict:
    """The sampler's full parameters (the paper's defaults filled in); step windows checked for ``steps``."""
    from generation.errors import ParameterError
    from generation.samplers import validate_params

    if steps is not None:
        check_steps(steps)
    try:
        return validate_params(sampler, params, steps)
    except ParameterError as exc:
        raise ValidationError({"params": str(exc)}) from None


def check_steps(steps) -> int:
    from generation.errors import ParameterError
    from generation.steps import check_steps as check_step_count

    try:
        return check_step_count(steps)
    except ParameterError as exc:
        raise ValidationError({"steps": str(exc).removeprefix("steps: ")}) from None


def check_base_model(base_model: str) -> str:
    """A base model folder on this machine must be an SD, SD-XL or PixArt-alpha pipeline; hub ids pass."""
    from generation.api import check_base_model as check_model
    from generation.errors import ModelLoadError

    try:
        check_model(base_model)
    except ModelLoadError as exc:
        raise ValidationError({"base_model": str(exc)}) from None
    return base_model


def check_method_name(name: str) -> str:
    """The name as the admin accepts it: the model field's own checks (a slug of at most 100 characters)."""
    try:
        return Method._meta.get_field("name").clean(name, None)
    except ValidationError as exc:
        raise ValidationError({"name": exc.messages}) from None


def validate_method(method: Method) -> None:
    """Check a method's sampler and fill in its parameters; an external method has neither."""
    if method.kind == Method.Kind.EXTERNAL:
        if method.sampler:
            raise ValidationError({"sampler": "An external method has no sampler: its images are imported."})
        if method.params:
            raise ValidationError({"params": "An external method takes no sampler parameters."})
        return
    check_sampler(method.sampler)
    if not isinstance(method.params, dict):
        raise ValidationError({"params": f"expected a JSON object, got {type(method.params).__name__}"})
    method.params = check_params(method.sampler, method.params, method.steps)
    check_base_model(method.base_model)


def sampler_names() -> tuple[str, ...]:
    from generation.samplers import SAMPLER_NAMES

    return SAMPLER_NAMES
