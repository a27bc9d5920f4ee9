"""Fine-tunes on the web side: validated before anything is queued (API and admin), leased, reconciled,
cancelled and resumed, followed on their page, and turned into methods once done."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from studyapp.catalog.images import check_image_bytes
from studyapp.catalog.importers import add_reference_image
from studyapp.models import FineTuneRun, Method
from studyapp.runs.actions import perform
from studyapp.runs.finetune import output_dir
from studyapp.runs.finetune_job import claim_fine_tune
from studyapp.runs.finetune_launch import FINE_TUNE_ACTIONS, create_fine_tune
from studyapp.runs.finetune_methods import create_methods
from studyapp.runs.reconciler import reconcile
from tests import factories

pytestmark = pytest.mark.django_db

FAST = {"steps": 12, "checkpoint_every": 4}


def concept_with_photos(count=3, slug=None):
    concept = factories.concept(slug=slug)
    for number in range(count):
        add_reference_image(
            concept, f"photo{number}.png", check_image_bytes(factories.png_bytes((40 * number, 90, 30)))
        )
    return concept


def spec(concept, **overrides):
    body = {"concept": concept.slug, "method": "lora", "hyperparameters": FAST, "seed": 3, "label": "dog-lora"}
    return {**body, **overrides}


def post(client, body):
    return client.post(reverse("api-fine-tune-list"), body, content_type="application/json")


def test_the_api_queues_a_valid_fine_tune_with_its_defaults_filled_in(owner_client, django_capture_on_commit_callbacks):
    concept = concept_with_photos()
    with django_capture_on_commit_callbacks() as sent:
        response = post(owner_client, spec(concept))
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["state"] == "queued" and len(sent) == 1
    assert body["hyperparameters"]["steps"] == 12 and body["hyperparameters"]["learning_rate"] == 1e-4
    assert body["hyperparameters"]["lora_rank"] == 4 and "seed" not in body["hyperparameters"]
    assert body["progress"] == {**body["progress"], "done": 0, "total": 12, "state": "queued"}
    detail = owner_client.get(reverse("api-fine-tune-detail", args=[body["id"]])).json()
    assert detail["concept"] == concept.slug and detail["seed"] == 3


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"hyperparameters": {"steps": 0}}, "hyperparameters", "steps: expected a value in [1, 100000], got 0"),
        ({"hyperparameters": {"learning_rate": 1.0}}, "hyperparameters", "learning_rate"),
        ({"hyperparameters": {"lora_rnk": 4}}, "hyperparameters", "unknown field(s) lora_rnk"),
        ({"hyperparameters": {"seed": 4}}, "hyperparameters", "set seed with the run's own field"),
        ({"hyperparameters": [1]}, "hyperparameters", "expected a JSON object"),
        ({"method": "svd"}, "method", "expected one of dreambooth, lora, textual_inversion, got 'svd'"),
        ({"seed": -1}, "seed", "seed"),
    ],
)
def test_the_api_refuses_bad_settings_and_queues_nothing(
    owner_client, django_capture_on_commit_callbacks, overrides, field, words
):
    with django_capture_on_commit_callbacks() as sent:
        response = post(owner_client, spec(concept_with_photos(), **overrides))
    assert response.status_code == 400, response.content
    assert words in " ".join(response.json()[field])
    assert not FineTuneRun.objects.exists() and not sent


def test_a_concept_needs_three_usable_photos(owner_client, media_root):
    few = concept_with_photos(2)
    response = post(owner_client, spec(few))
    assert response.status_code == 400
    assert "has 2 usable reference photos; fine-tuning needs at least 3" in response.json()["concept"][0]
    broken = concept_with_photos(3)
    reference = broken.references.first()
    (media_root / reference.image.name).write_bytes(b"not a picture")
    response = post(owner_client, spec(broken))
    assert response.status_code == 400 and "not an image that can be read" in response.json()["concept"][0]
    assert not FineTuneRun.objects.exists()


def test_a_base_model_folder_must_be_a_pipeline(owner_client, tmp_path):
    response = post(owner_client, spec(concept_with_photos(), base_model=str(tmp_path)))
    assert response.status_code == 400 and str(tmp_path) in response.json()["base_model"][0]


def test_the_api_is_staff_only(client, outsider):
    client.force_login(outsider)
    assert client.get(reverse("api-fine-tune-list")).status_code == 403
    assert post(client, {}).status_code == 403


def test_the_admin_form_shows_errors_then_queues_and_goes_to_the_run_page(
    owner_client, django_capture_on_commit_callbacks
):
    concept = concept_with_photos()
    form = {"label": "adm", "concept": concept.pk, "method": "lora", "hyperparameters": '{"steps": 12}', "seed": 0}
    url = reverse("admin:studyapp_finetunerun_add")
    assert "Hyperparameters" in owner_client.get(url).content.decode()
    bad = owner_client.post(url, {**form, "hyperparameters": '{"batch_size": 500}'})
    assert bad.status_code == 200 and "batch_size: expected a value in [1, 64], got 500" in bad.content.decode()
    assert not FineTuneRun.objects.exists()
    with django_capture_on_commit_callbacks() as sent:
        response = owner_client.post(url, form)
    run = FineTuneRun.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("fine-tune-detail", args=[run.pk])
    assert (run.state, run.total_steps, len(sent)) == ("queued", 12, 1)
    page = owner_client.get(response["Location"]).content.decode()
    assert 'data-progress-url="/runs/fine-tunes/' in page and 'step <span class="run-done">0</span>' in page
    changelist = owner_client.get(reverse("admin:studyapp_finetunerun_changelist")).content.decode()
    assert reverse("fine-tune-detail", args=[run.pk]) in changelist


def queued_run(**overrides):
    return create_fine_tune(
        concept=concept_with_photos(), method="lora", hyperparameters=FAST, **{"label": "", **overrides}
    )


def test_one_worker_holds_the_lease_until_its_heartbeat_is_older_than_the_lease():
    run = queued_run()
    assert claim_fine_tune(run.pk, "a", lease=60)
    assert not claim_fine_tune(run.pk, "b", lease=60)  # a duplicated message while "a" is alive
    FineTuneRun.objects.filter(pk=run.pk).update(heartbeat=timezone.now() - timedelta(seconds=120))
    assert claim_fine_tune(run.pk, "b", lease=60)  # "a" went silent
    run.refresh_from_db()
    assert (run.worker, run.attempts, run.state) == ("b", 2, "running")


def test_the_reconciler_requeues_a_silent_fine_tune_and_fails_one_out_of_attempts(
    settings, django_capture_on_commit_callbacks
):
    settings.GENERATION_MAX_ATTEMPTS = 2
    silent, spent = queued_run(), queued_run()
    long_ago = timezone.now() - timedelta(hours=1)
    FineTuneRun.objects.filter(pk=silent.pk).update(state="running", heartbeat=long_ago, attempts=1, worker="x")
    FineTuneRun.objects.filter(pk=spent.pk).update(state="running", heartbeat=long_ago, attempts=2, worker="y")
    with django_capture_on_commit_callbacks(execute=False) as sent:
        report = reconcile(resend_after=3600)
    assert report.fine_tunes_requeued == [silent.pk] and report.fine_tunes_failed == [spent.pk] and len(sent) == 1
    silent.refresh_from_db()
    spent.refresh_from_db()
    assert silent.state == "queued" and spent.state == "failed" and "gave up after 2 attempts" in spent.error


def test_cancel_and_resume_follow_the_run_states(owner_client, django_capture_on_commit_callbacks):
    run = queued_run()
    response = owner_client.post(reverse("fine-tune-action", args=[run.pk, "cancel"]))
    assert response.status_code == 302
    run.refresh_from_db()
    assert run.state == "cancelled"
    refused = owner_client.post(reverse("api-fine-tune-action", args=[run.pk, "cancel"]))
    assert refused.status_code == 409 and "applies only to queued, running" in refused.json()["detail"]
    unknown = owner_client.post(reverse("fine-tune-action", args=[run.pk, "explode"]))
    assert unknown.status_code == 404 and "expected one of cancel, resume" in unknown.json()["detail"]
    with django_capture_on_commit_callbacks() as sent:
        response = owner_client.post(reverse("api-fine-tune-action", args=[run.pk, "resume"]))
    assert response.status_code == 200 and response.json()["progress"]["state"] == "queued" and len(sent) == 1


def test_methods_are_made_once_per_sampler_over_a_finished_result(owner_client):
    run = queued_run(label="rex")
    early = owner_client.post(reverse("api-fine-tune-action", args=[run.pk, "methods"]))
    assert early.status_code == 409 and "methods can be made once it is done" in early.json()["detail"]
    FineTuneRun.objects.filter(pk=run.pk).update(state="done", output_path=f"fine-tunes/{run.pk}/model")
    run.refresh_from_db()
    response = owner_client.post(reverse("fine-tune-methods", args=[run.pk]))
    assert response.status_code == 302
    made = Method.objects.filter(name__startswith="rex-")
    assert made.count() == 8 and {m.personalization for m in made} == {str(output_dir(run))}
    assert made.get(name="rex-mixed").params == {"w_c": 3.5, "w_s": 3.5}
    again = create_methods(run)
    assert not again.created and len(again.existing) == 8
    page = owner_client.get(reverse("fine-tune-detail", args=[run.pk])).content.decode()
    assert "rex-photoswap" in page and reverse("admin:studyapp_sweep_add") in page
    assert perform(FINE_TUNE_ACTIONS["cancel"], [run]).refused  # a finished run cannot be cancelled
