"""Scoring stored images with the (tiny, offline) CLIP and DINO models."""

import pytest
from django.core.files.base import ContentFile

from studyapp.models import MetricScore, ReferenceImage
from studyapp.results.metrics import method_metrics, pareto_svg
from studyapp.runs.scoring import score_run
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="session")
def tiny_encoders_dir(tmp_path_factory):
    from generation.tiny import save_tiny_clip, save_tiny_dino

    folder = tmp_path_factory.getbasetemp() / "tiny-encoders"
    save_tiny_clip(folder)
    save_tiny_dino(folder)
    return folder


@pytest.fixture
def encoders(settings, tiny_encoders_dir):
    settings.CLIP_MODEL = str(tiny_encoders_dir / "clip")
    settings.DINO_MODEL = str(tiny_encoders_dir / "dino")


def _reference(concept, color):
    ref = ReferenceImage(concept=concept, content_hash=f"{color[0]:064d}", width=32, height=32)
    ref.image.save("ref.png", ContentFile(factories.png_bytes(color)), save=False)
    ref.save()


def _scored_run(seeds=2):
    prompts = factories.prompt_set()
    concept = factories.concept()
    _reference(concept, (10, 20, 30))
    _reference(concept, (200, 20, 30))
    run = factories.run(factories.method(sampler="mixed"), prompts)
    for prompt in prompts.prompts.all():
        for seed in range(seeds):
            factories.generated_image(run, concept, prompt, seed)
    return run


def test_every_image_of_a_run_gets_every_metric(encoders):
    run = _scored_run()
    report = score_run(run.pk)
    assert report.scored == 4 and report.errors == []
    assert MetricScore.objects.count() == 4 * 5
    for score in MetricScore.objects.filter(metric__in=["clip_is", "dino_is", "clip_ts"]):
        assert -1.0 <= score.value <= 1.0
    summary = method_metrics(run.method)
    assert summary["clip_ts"].n == 4 and summary["dino_is"].n == 4


def test_scoring_twice_updates_instead_of_adding(encoders):
    run = _scored_run(seeds=1)
    score_run(run.pk)
    first = dict(MetricScore.objects.values_list("id", "value"))
    score_run(run.pk)
    assert dict(MetricScore.objects.values_list("id", "value")) == pytest.approx(first)


def test_a_missing_file_is_reported_and_the_rest_are_scored(encoders):
    run = _scored_run()
    broken = run.images.first()
    broken.file.storage.delete(broken.file.name)
    report = score_run(run.pk)
    assert report.scored == 3
    assert len(report.errors) == 1 and f"image {broken.pk}" in report.errors[0]


def test_a_concept_without_reference_photos_is_named(encoders):
    run = _scored_run(seeds=1)
    concept = run.images.first().concept
    concept.references.all().delete()
    report = score_run(run.pk)
    assert report.scored == 0
    assert report.errors == [f"concept {concept.slug}: no reference photos"]


def test_pareto_plot_of_scored_methods_is_svg_with_their_names(encoders):
    run = _scored_run(seeds=1)
    score_run(run.pk)
    svg = pareto_svg([run.method])
    assert svg.lstrip().startswith("<?xml") and run.method.name in svg
