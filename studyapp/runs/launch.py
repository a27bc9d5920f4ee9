"""Starting a run: save it, split it into batches (one per concept and prompt), send one task per batch."""

from django.db import transaction
from django.utils import timezone

from studyapp.models import GenerationBatch, GenerationRun
from studyapp.runs.validation import validate_run
from studyapp.runs.workers import generate_after_commit, wants_background

Batch = GenerationBatch.State
Run = GenerationRun.State


@transaction.atomic
def create_run(*, method, prompt_set, concepts, seed_indices, steps=None, label="", sweep=None) -> GenerationRun:
    """Validate, save and queue a run; its tasks are sent when the transaction commits."""
    concepts = list(concepts)
    steps = method.steps if steps is None else steps
    params = validate_run(method, prompt_set, concepts, seed_indices, steps)
    run = GenerationRun.objects.create(
        method=method,
        prompt_set=prompt_set,
        seed_indices=seed_indices,
        params=params,
        steps=steps,
        label=label,
        sweep=sweep,
    )
    run.concepts.set(concepts)
    queue_run(run)
    run.refresh_from_db()
    return run


@transaction.atomic
def queue_run(run: GenerationRun) -> int:
    """Create the run's batches (one per concept and prompt) and send the ones not done; returns how many."""
    prompts = list(run.prompt_set.prompts.all())
    concepts = list(run.concepts.all())
    for concept in concepts:
        for prompt in prompts:
            GenerationBatch.objects.get_or_create(
                run=run, concept=concept, prompt=prompt, defaults={"seed_indices": run.seed_indices}
            )
    GenerationRun.objects.filter(pk=run.pk).update(
        images_total=len(concepts) * len(prompts) * len(run.seed_indices), state=Run.QUEUED, error="", finished=None
    )
    pending = run.batches.exclude(state__in=[Batch.DONE, Batch.RUNNING])
    pending.update(state=Batch.QUEUED, attempts=0, error="", worker="")
    return send_batches(list(pending.values_list("pk", flat=True)))


def send_batches(batch_ids: list[int]) -> int:
    """Send one task per batch once the surrounding transaction commits (at once outside one).

    Without a broker inside ``workers.in_background()`` (a page saving a run), a thread generates them instead.
    """
    from studyapp.tasks import generate_batch

    GenerationBatch.objects.filter(pk__in=batch_ids).update(queued=timezone.now())
    if wants_background():
        for batch_id in batch_ids:
            generate_after_commit(batch_id)
        return len(batch_ids)
    for batch_id in batch_ids:
        generate_batch.delay_on_commit(batch_id)
    return len(batch_ids)
