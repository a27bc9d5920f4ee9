"""From a world subject's photos to a published study through admin pages only, on the world's model:
the concept and its photos,
a fine-tune (trained by the web process's background thread, as without a broker), one method per
sampler over its result, runs over two of them, and a study comparing them, built and published."""

import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from studyapp.models import Concept, FineTuneRun, GenerationRun, Method, PromptSet, Study
from tests.runs.factories import FAST_STEPS, wait_for_other_sessions_to_close

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

WAIT_SECONDS = 300


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def done(model, pk) -> bool:
    state = model.objects.filter(pk=pk).values_list("state", flat=True).first()
    assert state not in ("failed", "cancelled"), model.objects.get(pk=pk).error
    return state == "done"


def errors_in(response) -> str:
    """The admin form's errors, when it came back instead of saving."""
    context = response.context or {}
    form = context.get("adminform")
    inlines = [formset.formset.errors for formset in context.get("inline_admin_formsets", [])]
    return f"{form.form.errors if form else response.status_code} {inlines}"


def add_concept(client, folder) -> Concept:
    from generation.world.data import write_subject_photos

    files = sorted((write_subject_photos(folder) / "sunny_ball").glob("*.jpg"))
    photos = [SimpleUploadedFile(path.name, path.read_bytes(), content_type="image/jpeg") for path in files]
    form = {"slug": "rex", "concept_token": "sks", "superclass": "ball", "kind": "object", "photos": photos}
    form.update({"references-TOTAL_FORMS": 0, "references-INITIAL_FORMS": 0, "references-MAX_NUM_FORMS": 1000})
    response = client.post(reverse("admin:studyapp_concept_add"), form)
    assert response.status_code == 302, errors_in(response)
    return Concept.objects.get(slug="rex")


def add_prompt_set(client) -> PromptSet:
    form = {
        "slug": "two",
        "name": "two prompts",
        "concept_kind": "",
        "prompts-TOTAL_FORMS": 2,
        "prompts-INITIAL_FORMS": 0,
        "prompts-MIN_NUM_FORMS": 0,
        "prompts-MAX_NUM_FORMS": 1000,
        "prompts-0-position": 1,
        "prompts-0-template": "a {concept} in the snow",
        "prompts-1-position": 2,
        "prompts-1-template": "a {concept} on the beach",
    }
    response = client.post(reverse("admin:studyapp_promptset_add"), form)
    assert response.status_code == 302, errors_in(response)
    return PromptSet.objects.get(slug="two")


def add_run(client, method, prompts, concept) -> GenerationRun:
    form = {
        "label": method.name,
        "method": method.pk,
        "prompt_set": prompts.pk,
        "concepts": [concept.pk],
        "seed_indices": "[0, 1]",
        "steps": FAST_STEPS,
    }
    response = client.post(reverse("admin:studyapp_generationrun_add"), form)
    assert response.status_code == 302, errors_in(response)
    return GenerationRun.objects.get(label=method.name)


def add_study(client, method_a, method_b) -> Study:
    defaults = Study()
    design = [
        "ratings_per_pair",
        "overlap_fraction",
        "overlap_ratings",
        "pairs_per_rater",
        "gold_rate",
        "attention_rate",
        "display_size",
        "random_seed",
        "question_text",
        "question_image",
        "question_overall",
        "lease_seconds",
    ]
    form = {name: getattr(defaults, name) for name in design}
    form.update(
        {
            "title": "Rex: mixed against base",
            "slug": "rex-study",
            "pairs_per_rater": 4,
            "gold_rate": 0.0,
            "attention_rate": 0.0,
            "accept_open_link": "on",
            "exclusion_rules": "{}",
            "fixed_factors": "[]",
            "comparisons-TOTAL_FORMS": 1,
            "comparisons-INITIAL_FORMS": 0,
            "comparisons-MIN_NUM_FORMS": 0,
            "comparisons-MAX_NUM_FORMS": 1000,
            "comparisons-0-position": 0,
            "comparisons-0-method_a": method_a.pk,
            "comparisons-0-method_b": method_b.pk,
        }
    )
    response = client.post(reverse("admin:studyapp_study_add"), form)
    assert response.status_code == 302, errors_in(response)
    return Study.objects.get(slug="rex-study")


def test_photos_to_a_published_study_through_admin_pages(owner_client, settings, tmp_path):
    settings.CELERY_TASK_ALWAYS_EAGER = True  # no broker: the web process's thread trains and generates
    settings.GENERATION_MODEL, settings.OFFLINE_MODELS = "", "world"  # blank base models are the world's
    concept = add_concept(owner_client, tmp_path)
    assert concept.references.count() == 5

    url = reverse("admin:studyapp_finetunerun_add")
    form = {"label": "rex-lora", "concept": concept.pk, "method": "lora", "seed": 0}
    response = owner_client.post(url, {**form, "hyperparameters": '{"steps": 12, "checkpoint_every": 4}'})
    run = FineTuneRun.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("fine-tune-detail", args=[run.pk])
    wait_for(lambda: done(FineTuneRun, run.pk), "the fine-tune")
    page = owner_client.get(response["Location"]).content.decode()
    assert "Create one method per sampler" in page and f"fine-tunes/{run.pk}/model" in page
    assert "pytorch_lora_weights.safetensors" in page  # the manifest, with each file's hash

    response = owner_client.post(reverse("fine-tune-methods", args=[run.pk]), follow=True)
    assert "8 method(s) created" in response.content.decode()
    base, mixed = Method.objects.get(name="rex-lora-base"), Method.objects.get(name="rex-lora-mixed")

    prompts = add_prompt_set(owner_client)
    runs = [add_run(owner_client, method, prompts, concept) for method in (base, mixed)]
    for generation_run in runs:
        wait_for(lambda generation_run=generation_run: done(GenerationRun, generation_run.pk), "the runs")
    assert {generation_run.images.count() for generation_run in runs} == {4}

    study = add_study(owner_client, mixed, base)
    setup = reverse("admin:studyapp_study_setup", args=[study.pk])
    assert owner_client.post(setup, {"action": "build"}).status_code == 302
    assert study.pairs.filter(kind="regular").count() == 4
    owner_client.post(reverse("admin:studyapp_study_confirm", args=[study.pk, "publish"]))
    study.refresh_from_db()
    assert study.state == Study.State.PUBLISHED
    wait_for_other_sessions_to_close()
