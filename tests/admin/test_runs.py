"""The runs admin: runs and sweeps validated before anything is queued, with progress and the run actions."""

import pytest
from django.urls import reverse

from studyapp.models import GenerationRun, Sweep
from studyapp.runs.actions import RUN_ACTIONS
from studyapp.runs.sweeps import presets
from tests import factories
from tests.runs.factories import FAST_STEPS, small_run

pytestmark = pytest.mark.django_db


# ---------------------------------------------------------------- admin


def test_admin_add_run_validates_then_queues(owner_client, django_capture_on_commit_callbacks):
    method, prompts, concept = factories.method(sampler="switching"), factories.prompt_set(), factories.concept()
    form = {
        "label": "from admin",
        "method": method.pk,
        "prompt_set": prompts.pk,
        "concepts": [concept.pk],
        "seed_indices": "[0, 1, 2]",
        "steps": FAST_STEPS,
    }
    url = reverse("admin:studyapp_generationrun_add")
    bad = owner_client.post(url, {**form, "seed_indices": "[1, 1]"})
    assert bad.status_code == 200 and "each seed index once" in bad.content.decode()
    with django_capture_on_commit_callbacks() as sent:
        response = owner_client.post(url, form)
    assert response.status_code == 302
    run = GenerationRun.objects.get()
    assert (run.images_total, run.batches.count(), len(sent)) == (6, 2, 2)
    assert set(run.params) >= {"t_sw"}
    changelist = owner_client.get(reverse("admin:studyapp_generationrun_changelist")).content.decode()
    assert "<progress" in changelist and reverse("run-detail", args=[run.pk]) in changelist
    change = owner_client.get(reverse("admin:studyapp_generationrun_change", args=[run.pk])).content.decode()
    assert "<progress" in change and concept.slug in change  # the batches inline


def test_admin_add_sweep_queues_its_runs(owner_client, django_capture_on_commit_callbacks):
    prompts, concept = factories.prompt_set(), factories.concept()
    form = {
        "name": "adm",
        "sampler": "switching",
        "preset": "switching",
        "grid": "[]",
        "prompt_set": prompts.pk,
        "concepts": [concept.pk],
        "seed_indices": "[0]",
        "steps": FAST_STEPS,
        "base_model": "",
        "personalization": "",
    }
    url = reverse("admin:studyapp_sweep_add")
    bad = owner_client.post(url, {**form, "sampler": "mixed"})
    assert bad.status_code == 200 and "unknown parameter" in bad.content.decode()
    with django_capture_on_commit_callbacks():
        response = owner_client.post(url, form)
    assert response.status_code == 302, response.content.decode()[:2000]
    sweep = Sweep.objects.get()
    assert sweep.runs.count() == len(presets()["switching"])
    page = owner_client.get(reverse("admin:studyapp_sweep_change", args=[sweep.pk])).content.decode()
    assert "<progress" in page


def test_the_admin_actions_are_the_run_actions_table(owner_client, django_capture_on_commit_callbacks):
    run = small_run(templates=("a {concept} in the snow", "a {concept} on the beach"))
    changelist = reverse("admin:studyapp_generationrun_changelist")
    page = owner_client.get(changelist).content.decode()
    assert all(f'value="{name.replace("-", "_")}"' in page for name in RUN_ACTIONS)
    response = owner_client.post(changelist, {"action": "cancel", "_selected_action": [run.pk]}, follow=True)
    run.refresh_from_db()
    assert run.state == GenerationRun.State.CANCELLED and "cancelled" in response.content.decode()
    with django_capture_on_commit_callbacks() as sent:
        response = owner_client.post(changelist, {"action": "resume", "_selected_action": [run.pk]}, follow=True)
    assert len(sent) == 2 and "2 batch(es) queued" in response.content.decode()
