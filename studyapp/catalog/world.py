"""The procedural world's subjects and prompt set in the catalog (generation/world)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from django.db import transaction

from studyapp.catalog.dreambooth import get_or_create_subject
from studyapp.catalog.images import check_image_bytes
from studyapp.catalog.importers import add_reference_image
from studyapp.models import Concept, Prompt, PromptSet

WORLD_PROMPT_SET = "world"


@transaction.atomic
def load_world_prompt_set() -> PromptSet:
    from generation.world.vocabulary import PROMPT_TEMPLATES

    prompt_set, _ = PromptSet.objects.get_or_create(
        slug=WORLD_PROMPT_SET,
        defaults={
            "name": "World prompts",
            "description": "The procedural world's recontextualisation and property prompts (generation/world).",
            "concept_kind": "",
        },
    )
    for position, template in enumerate(PROMPT_TEMPLATES, start=1):
        Prompt.objects.get_or_create(prompt_set=prompt_set, position=position, defaults={"template": template})
    return prompt_set


def world_subject(slug: str) -> Concept:
    """The world subject ``slug`` with its rendered reference photos (added once)."""
    from generation.world.data import write_subject_photos
    from generation.world.vocabulary import SUBJECTS_BY_SLUG

    subject = SUBJECTS_BY_SLUG[slug]
    concept, _ = get_or_create_subject(slug, subject.superclass, "object")
    if not concept.references.exists():
        with tempfile.TemporaryDirectory() as folder:
            write_subject_photos(folder)
            for path in sorted((Path(folder) / slug).glob("*.jpg")):
                add_reference_image(concept, path.name, check_image_bytes(path.read_bytes(), name=path.name))
    return concept
