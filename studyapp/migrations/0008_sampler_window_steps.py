"""Stored sampler parameters in the current conventions, each meaning what it meant when it was stored.

Step windows (t_sw; Photoswap's t_sf, t_cm, t_sm) were counts of the run's own steps; they now count
steps of a ``window_steps``-step schedule rescaled to the run. Setting ``window_steps`` to the steps the
row was made for keeps every existing window exactly where it was. Photoswap's ``align_tokens`` flag
became ``token_alignment``: true (the old default) was the template-position alignment, false the
reference code's index-by-index copy.
"""

from django.db import migrations

WINDOW_SAMPLERS = ("switching", "multistage", "masked", "photoswap")
BATCH = 500


def upgraded(sampler: str, params, steps: int):
    """``params`` in the current conventions; unchanged when there is nothing to convert."""
    if not isinstance(params, dict) or sampler not in WINDOW_SAMPLERS:
        return params
    new = dict(params)
    new.setdefault("window_steps", steps)
    if sampler == "photoswap" and "align_tokens" in new:
        new["token_alignment"] = "template" if new.pop("align_tokens") else "index"
    return new


def downgraded(sampler: str, params, steps: int):
    """The inverse, for windows counted on the row's own steps."""
    if not isinstance(params, dict) or sampler not in WINDOW_SAMPLERS:
        return params
    new = dict(params)
    if new.get("window_steps") == steps:
        del new["window_steps"]
    if sampler == "photoswap" and "token_alignment" in new:
        new["align_tokens"] = new.pop("token_alignment") == "template"
    return new


def _convert_params(model, rows, sampler_and_steps, change) -> None:
    changed = []
    for row in rows.iterator(chunk_size=BATCH):
        sampler, steps = sampler_and_steps(row)
        params = change(sampler, row.params, steps)
        if params != row.params:
            row.params = params
            changed.append(row)
    model.objects.bulk_update(changed, ["params"], batch_size=BATCH)


def _convert_grids(Sweep, change) -> None:
    changed = []
    for sweep in Sweep.objects.exclude(grid=[]):
        if not isinstance(sweep.grid, list):
            continue
        grid = [change(sweep.sampler, point, sweep.steps) for point in sweep.grid]
        if grid != sweep.grid:
            sweep.grid = grid
            changed.append(sweep)
    Sweep.objects.bulk_update(changed, ["grid"], batch_size=BATCH)


def _apply(apps, change) -> None:
    Method = apps.get_model("studyapp", "Method")
    GenerationRun = apps.get_model("studyapp", "GenerationRun")
    GeneratedImage = apps.get_model("studyapp", "GeneratedImage")
    _convert_params(Method, Method.objects.all(), lambda m: (m.sampler, m.steps), change)
    runs = GenerationRun.objects.select_related("method")
    _convert_params(GenerationRun, runs, lambda r: (r.method.sampler, r.steps), change)
    images = GeneratedImage.objects.select_related("method", "run")
    _convert_params(GeneratedImage, images, lambda i: (i.method.sampler, i.run.steps), change)
    _convert_grids(apps.get_model("studyapp", "Sweep"), change)


def forwards(apps, schema_editor):
    _apply(apps, upgraded)


def backwards(apps, schema_editor):
    _apply(apps, downgraded)


class Migration(migrations.Migration):
    dependencies = [("studyapp", "0007_merge_permission_and_wording")]

    operations = [migrations.RunPython(forwards, backwards)]
