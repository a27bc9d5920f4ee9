"""Checks shared by the admin, the API and the import commands."""

from django.core.exceptions import ValidationError


def validate_method_fields(method) -> None:
    """Fill in and check a method's sampler parameters against the sampler's declared schema."""
    if method.kind == method.Kind.EXTERNAL:
        if method.sampler:
            raise ValidationError({"sampler": "An external method has no sampler: its images are imported."})
        if method.params:
            raise ValidationError({"params": "An external method takes no sampler parameters."})
        return
    from generation.errors import ParameterError
    from generation.samplers import SAMPLER_NAMES, validate_params

    if method.sampler not in SAMPLER_NAMES:
        raise ValidationError({"sampler": f"expected one of {', '.join(SAMPLER_NAMES)}, got {method.sampler!r}"})
    if not isinstance(method.params, dict):
        raise ValidationError({"params": f"expected a JSON object, got {type(method.params).__name__}"})
    try:
        method.params = validate_params(method.sampler, method.params)
    except ParameterError as exc:
        raise ValidationError({"params": str(exc)}) from None
