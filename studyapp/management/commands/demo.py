"""Seed a complete small study that runs offline: concepts, prompts, methods, images, a study, an admin."""

import secrets
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from studyapp.catalog.dreambooth import get_or_create_subject, load_prompt_sets, prompt_set_for_kind
from studyapp.catalog.images import check_image_bytes
from studyapp.catalog.importers import add_reference_image
from studyapp.catalog.methods import validate_method
from studyapp.models import Comparison, GenerationRun, Method, PromptSet, Study
from studyapp.rating.simulation import simulate_raters
from studyapp.runs.scoring import score_run
from studyapp.runs.worker import generate_batch
from studyapp.studies.publishing import publish

DEMO_DATA = Path(__file__).resolve().parents[2] / "demo_data"
DEMO_SUBJECTS = [("dog", "dog", "live"), ("teapot", "teapot", "object")]
DEMO_METHODS = [
    ("demo-base", "base", {}),
    ("demo-mixed", "mixed", {}),
    ("demo-switching", "switching", {}),
]
DEMO_STUDY = "demo"


class Command(BaseCommand):
    help = "Seed a small demo study with the offline tiny model (random weights: the images are noise-like)."

    def add_arguments(self, parser):
        parser.add_argument("--prompts", type=int, default=4, help="prompts per concept (default 4)")
        parser.add_argument("--seeds", type=int, default=2, help="seeds per prompt (default 2)")
        parser.add_argument("--steps", type=int, default=10, help="denoising steps (default 10)")
        parser.add_argument(
            "--simulated-raters",
            type=int,
            default=4,
            help="raters simulated through the assignment engine, so the results page has numbers (default 4)",
        )
        parser.add_argument("--base-url", default="http://127.0.0.1:8000", help="for the printed links")

    def handle(self, *args, prompts, seeds, steps, simulated_raters, base_url, **options):
        load_prompt_sets()
        concepts = [self._concept(*subject) for subject in DEMO_SUBJECTS]
        methods = [self._method(name, sampler, params, steps) for name, sampler, params in DEMO_METHODS]
        for method in methods:
            self._generate(method, concepts, prompts, list(range(seeds)), steps)
        study = self._study(methods)
        answers = simulate_raters(study, simulated_raters)
        if simulated_raters:
            self.stdout.write(
                f"  {simulated_raters} simulated raters ('simulated-*') stored {answers} answers"
                " (they prefer method A 60% of the time)"
            )
        password = self._admin()
        pairs = study.pairs.count()
        checks = study.pairs.exclude(kind="regular").count()
        self.stdout.write(self.style.SUCCESS(f"Demo ready: {pairs} pairs ({checks} gold/attention) in study {study.slug!r}."))
        self.stdout.write(f"Admin:      {base_url}/admin/  (user 'admin', password '{password}')")
        self.stdout.write(f"Rater link: {base_url}/s/{study.open_link_token}/")
        self.stdout.write(f"Results:    {base_url}/studies/{study.pk}/results/")

    def _concept(self, slug, superclass, kind):
        concept, _ = get_or_create_subject(slug, superclass, kind)
        for path in sorted((DEMO_DATA / slug).glob("*.jpg")):
            add_reference_image(concept, path.name, check_image_bytes(path.read_bytes(), name=str(path)))
        return concept

    def _method(self, name, sampler, params, steps):
        method, created = Method.objects.get_or_create(
            name=name,
            defaults={
                "sampler": sampler,
                "params": params,
                "steps": steps,
                "description": f"The {sampler} sampler on the offline tiny model.",
            },
        )
        if created:
            validate_method(method)  # fills in the sampler's default parameters
            method.save()
        return method

    def _generate(self, method, concepts, prompt_count, seed_indices, steps):
        for concept in concepts:
            prompt_set = PromptSet.objects.get(slug=prompt_set_for_kind(concept.kind))
            run, created = GenerationRun.objects.get_or_create(
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
            scored = score_run(run.pk).scored
            self.stdout.write(f"  {run}: {run.images.count()} images, {scored} scored with the tiny CLIP/DINO")

    @transaction.atomic
    def _study(self, methods):
        study, created = Study.objects.get_or_create(
            slug=DEMO_STUDY,
            defaults={
                "title": "Demo: samplers on the tiny model",
                "instructions": "You will see photos of a subject, a text, and two generated images. "
                "Answer three questions about the two images. If you cannot tell, choose \"Can't decide\".",
                "consent_text": "This is a demo study. Your answers are stored without your name.",
                "pairs_per_rater": 10,
                "ratings_per_pair": 2,
                "completion_code": "DEMO-DONE",
            },
        )
        if created:
            base = methods[0]
            for position, other in enumerate(methods[1:]):
                Comparison.objects.create(study=study, method_a=other, method_b=base, position=position)
            publish(study)
        return Study.objects.get(pk=study.pk)

    def _admin(self) -> str:
        password = secrets.token_urlsafe(9)
        user, _ = get_user_model().objects.get_or_create(username="admin", defaults={"email": "admin@localhost"})
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        return password
