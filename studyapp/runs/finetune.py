"""Fine-tuning runs: everything checked before anything is queued, the settings the trainer gets, the files.

A fine-tune is one row (FineTuneRun) and one gpu-queue task; it is queued, cancelled and resumed by
`studyapp.runs.finetune_launch`, and trained by the worker-side job, `studyapp.runs.finetune_job`. Its
files live in one folder per run under MEDIA_ROOT: the checkpoints a resumed worker starts from
(`checkpoints/`) and, once done, the result in a format the loaders read (`model/`).
"""

from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from studyapp.catalog.images import check_image_bytes
from studyapp.catalog.methods import check_base_model
from studyapp.models import Concept, FineTuneRun

Run = FineTuneRun.State

MIN_PHOTOS = 3
FINE_TUNE_FOLDER = "fine-tunes"
# Set on the run's own fields, not among the hyper-parameters.
OWN_FIELDS = ("method", "seed", "prior_preservation")


def run_folder(run: FineTuneRun) -> Path:
    return Path(settings.MEDIA_ROOT) / FINE_TUNE_FOLDER / str(run.pk)


def work_dir(run: FineTuneRun) -> Path:
    return run_folder(run) / "checkpoints"


def output_dir(run: FineTuneRun) -> Path:
    return run_folder(run) / "model"


def output_location(run: FineTuneRun) -> Path | None:
    """Where a finished run's result lies on this machine, or None before it is done."""
    return Path(settings.MEDIA_ROOT) / run.output_path if run.output_path else None


def instance_prompt(concept: Concept) -> str:
    return f"a photo of {concept.concept_phrase}"


def class_prompt(concept: Concept) -> str:
    return f"a photo of {concept.superclass}"


def training_settings(method: str, hyperparameters, seed: int, prior_preservation: bool):
    """The library's FineTuneSettings for these fields, validated; a ValidationError names the field."""
    from generation.training import FineTuneError, FineTuneSettings

    if method not in FineTuneRun.TrainingMethod.values:
        expected = ", ".join(FineTuneRun.TrainingMethod.values)
        raise ValidationError({"method": f"expected one of {expected}, got {method!r}"})
    if not isinstance(hyperparameters, dict):
        raise ValidationError({"hyperparameters": f"expected a JSON object, got {type(hyperparameters).__name__}"})
    doubled = [name for name in OWN_FIELDS if name in hyperparameters]
    if doubled:
        raise ValidationError({"hyperparameters": f"set {', '.join(doubled)} with the run's own field, not here"})
    values = {**hyperparameters, "method": method, "seed": seed, "prior_preservation": prior_preservation}
    try:
        chosen = FineTuneSettings.from_dict(values)
        chosen.validate()
    except FineTuneError as exc:
        # The library's message starts with the setting's name: shown on that field when it is one of the run's.
        name = str(exc).split(":", 1)[0]
        raise ValidationError({name if name in OWN_FIELDS else "hyperparameters": str(exc)}) from None
    return chosen


def usable_photos(concept: Concept) -> list[Path]:
    """The concept's reference photos whose files are there and decode; fewer than MIN_PHOTOS is refused."""
    usable, problems = [], []
    for reference in concept.references.all():
        path = Path(settings.MEDIA_ROOT) / reference.image.name
        try:
            check_image_bytes(path.read_bytes(), name=reference.original_name or path.name)
        except OSError:
            problems.append(f"{reference}: the file is missing")
            continue
        except ValidationError as exc:
            problems.append(exc.messages[0])
            continue
        usable.append(path)
    if len(usable) < MIN_PHOTOS:
        why = f" ({'; '.join(problems)})" if problems else ""
        raise ValidationError(
            {
                "concept": f"concept {concept.slug!r} has {len(usable)} usable reference photos{why}; "
                f"fine-tuning needs at least {MIN_PHOTOS}"
            }
        )
    return usable


def reference_paths(concept: Concept) -> list[Path]:
    """Every reference photo's file, for the trainer, which refuses one that does not decode by name."""
    return [Path(settings.MEDIA_ROOT) / reference.image.name for reference in concept.references.all()]


def validate_fine_tune(run: FineTuneRun) -> dict:
    """Check everything a fine-tune needs before anything is queued; return its full settings as stored."""
    if run.concept_id is None:
        raise ValidationError({"concept": "expected a concept, got none"})
    chosen = training_settings(run.method, run.hyperparameters, run.seed, run.prior_preservation)
    usable_photos(run.concept)
    if run.base_model:
        check_base_model(run.base_model)
    return stored_hyperparameters(chosen)


def stored_hyperparameters(chosen) -> dict:
    """Every setting but the run's own fields, defaults filled in (the learning rate too), as the run keeps them."""
    stored = {key: value for key, value in chosen.to_dict().items() if key not in OWN_FIELDS}
    return {**stored, "learning_rate": chosen.effective_learning_rate}


def finish_fine_tune(run_id: int, worker: str, state: str, error: str = "", **fields) -> bool:
    """Record the end of a fine-tune held by `worker`; False if the lease had moved on (cancelled, taken over)."""
    held = FineTuneRun.objects.filter(pk=run_id, state=Run.RUNNING, worker=worker)
    return bool(held.update(state=state, error=error[:5000], finished=timezone.now(), eta_seconds=None, **fields))
