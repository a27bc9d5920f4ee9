"""The DreamBooth subjects and the paper's prompt sets, shipped as data (studyapp/fixtures/dreambooth.json)."""

import json
from functools import cache
from pathlib import Path

from django.db import transaction

from studyapp.models import Concept, Prompt, PromptSet

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "dreambooth.json"


@cache
def dreambooth_data() -> dict:
    return json.loads(FIXTURE.read_text())


def dreambooth_subjects() -> dict[str, dict]:
    return {subject["slug"]: subject for subject in dreambooth_data()["subjects"]}


def prompt_set_for_kind(kind: str) -> str:
    return f"dreambooth-{kind}"


@transaction.atomic
def load_prompt_sets() -> dict[str, int]:
    """Create the paper's prompt sets; idempotent. Returns counts of what was added."""
    added = {"prompt_sets": 0, "prompts": 0}
    for spec in dreambooth_data()["prompt_sets"]:
        prompt_set, created = PromptSet.objects.get_or_create(
            slug=spec["slug"],
            defaults={"name": spec["name"], "description": spec["description"], "concept_kind": spec["concept_kind"]},
        )
        added["prompt_sets"] += created
        for position, template in enumerate(spec["prompts"], start=1):
            _, created = Prompt.objects.get_or_create(
                prompt_set=prompt_set, position=position, defaults={"template": template}
            )
            added["prompts"] += created
    return added


def get_or_create_subject(slug: str, superclass: str, kind: str, token: str = "sks") -> tuple[Concept, bool]:
    return Concept.objects.get_or_create(
        slug=slug, defaults={"superclass": superclass, "kind": kind, "concept_token": token}
    )
