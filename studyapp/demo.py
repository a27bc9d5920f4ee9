"""The demo study: two subjects of the procedural world, three samplers on the world's model with each
subject's LoRA, their images scored with the world's CLIP and DINO, a published study and oracle raters
who answer from the world's judge. Seeding twice adds nothing; `manage.py demo` (and `make demo`) call
this and print each step as it starts."""

import secrets
import time
from collections.abc import Callable

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from studyapp.catalog.dreambooth import load_prompt_sets
from studyapp.catalog.methods import validate_method
from studyapp.catalog.world import load_world_prompt_set, world_subject
from studyapp.models import Comparison, Concept, GeneratedImage, GenerationRun, Method, PromptSet, Study
from studyapp.rating.simulation import simulate_oracle_raters
from studyapp.runs.scoring import metric_models, score_run
from studyapp.runs.worker import generate_batch
from studyapp.studies.publishing import publish

DEMO_SUBJECTS = ["dotted_ring", "stone_pyramid"]  # Mixed beats Base on text for them at most prompts (docs/world.md)
DEMO_METHODS = [
    ("demo-base", "base", {}),
    ("demo-mixed", "mixed", {}),
    ("demo-switching", "switching", {}),
]
DEMO_STUDY = "demo"


DEMO_STEPS = 5


def seed_demo(prompts: int, seeds: int, steps: int, simulated_raters: int, say: Callable[[str], None]) -> Study:
    """Everything the demo shows; `say` hears each step before it starts, with counts and times as they come."""
    from generation.world.paths import PIPELINE

    step = _Steps(say)
    step("Prompt sets and the world's demo subjects")
    load_prompt_sets()
    load_world_prompt_set()
    concepts = [world_subject(slug) for slug in DEMO_SUBJECTS]
    photos = sum(concept.references.count() for concept in concepts)
    step.done(f"{PromptSet.objects.count()} prompt sets, {len(concepts)} subjects with {photos} reference photos")
    step("The world's models (shipped in generation/world/models)")
    clip, dino = metric_models()
    step.done(f"generation model {PIPELINE} with each subject's LoRA; CLIP {clip}; DINO {dino}")
    methods = [demo_method(name, sampler, params, steps) for name, sampler, params in DEMO_METHODS]
    runs = [(method, concept) for method in methods for concept in concepts]
    step(
        f"{len(runs)} runs of {prompts} prompts x {seeds} seeds at {steps} steps, each scored "
        "(the first also loads the models into memory)"
    )
    for number, (method, concept) in enumerate(runs, start=1):
        started = time.monotonic()
        run = generate_in_process(method, concept, prompts, list(range(seeds)), steps)
        scored = score_run(run.pk).scored
        say(
            f"      run {number}/{len(runs)} {run}: {run.images.count()} images, {scored} scored "
            f"({time.monotonic() - started:.1f} s)"
        )
    step.done(f"{GeneratedImage.objects.filter(method__in=methods).count()} images")
    step("The study: pairs, gold and attention checks, publishing")
    study = demo_study(methods)
    checks = study.pairs.exclude(kind="regular").count()
    step.done(f"study {study.slug!r}: {study.pairs.count()} pairs ({checks} gold/attention), {study.state}")
    step(f"{simulated_raters} oracle raters through the assignment engine")
    answers = simulate_oracle_raters(study, simulated_raters)
    step.done(
        f"{simulated_raters} oracle raters ('oracle-*') stored {answers} answers"
        + (
            " (they answer from the world's judge, with noise, a left bias and 10% careless)"
            if simulated_raters
            else ""
        )
    )
    return study


class _Steps:
    """Numbered progress lines: "[2/5] What starts now ..." then "      what came of it (3.2 s)"."""

    def __init__(self, say: Callable[[str], None]):
        self.say, self.number, self.started = say, 0, time.monotonic()

    def __call__(self, what: str) -> None:
        self.number += 1
        self.started = time.monotonic()
        self.say(f"[{self.number}/{DEMO_STEPS}] {what} ...")

    def done(self, outcome: str) -> None:
        self.say(f"      {outcome} ({time.monotonic() - self.started:.1f} s)")


def demo_method(name: str, sampler: str, params: dict, steps: int) -> Method:
    from generation.world.paths import PIPELINE, SUBJECTS

    method, created = Method.objects.get_or_create(
        name=name,
        defaults={
            "sampler": sampler,
            "params": params,
            "steps": steps,
            "base_model": str(PIPELINE),
            "personalization": str(SUBJECTS / "{concept}"),
            "description": f"The {sampler} sampler on the world's model, with the subject's LoRA.",
        },
    )
    if created:
        validate_method(method)  # fills in the sampler's default parameters
        method.save()
    return method


def generate_in_process(
    method: Method, concept: Concept, prompt_count: int, seed_indices: list[int], steps: int
) -> GenerationRun:
    """A run of the first prompts of the world prompt set, generated here rather than by workers."""
    prompt_set = load_world_prompt_set()
    run, _ = GenerationRun.objects.get_or_create(
        method=method,
        prompt_set=prompt_set,
        label=f"demo {method.name} {concept.slug}",
        defaults={"seed_indices": seed_indices, "params": method.params, "steps": steps},
    )
    run.concepts.add(concept)
    selected = list(prompt_set.prompts.all()[:prompt_count])
    run.images_total = len(selected) * len(seed_indices)
    run.state, run.started = GenerationRun.State.RUNNING, run.started or timezone.now()
    run.save()
    for prompt in selected:
        generate_batch(run.pk, concept.pk, prompt.pk, seed_indices)
    run.state, run.finished = GenerationRun.State.DONE, timezone.now()
    run.save()
    return run


@transaction.atomic
def demo_study(methods: list[Method]) -> Study:
    """The published demo study: every method against the first one."""
    study, created = Study.objects.get_or_create(
        slug=DEMO_STUDY,
        defaults={
            "title": "Demo: samplers on the world's model",
            "instructions": "You will see photos of a subject, a text, and two generated images. "
            'Answer three questions about the two images. If you cannot tell, choose "Can\'t decide".',
            "consent_text": "This is a demo study. Your answers are stored without your name.",
            "pairs_per_rater": 10,
            "attention_rate": 0.1,  # one attention check in each rater's ten pairs (and one gold pair at 0.05)
            "ratings_per_pair": 3,  # as in the paper: 48,864 answers over 16,000 pairs
            "completion_code": "DEMO-DONE",
            # Two subjects cannot stand for subjects in general: the demo's results are about these two.
            "fixed_factors": ["subject"],
        },
    )
    if created:
        base = methods[0]
        for position, other in enumerate(methods[1:]):
            Comparison.objects.create(study=study, method_a=other, method_b=base, position=position)
        publish(study)
    return Study.objects.get(pk=study.pk)


def reset_admin_password() -> str:
    """The demo's superuser 'admin', with a fresh password (returned)."""
    password = secrets.token_urlsafe(9)
    user, _ = get_user_model().objects.get_or_create(username="admin", defaults={"email": "admin@localhost"})
    user.is_staff = user.is_superuser = True
    user.set_password(password)
    user.save()
    return password
