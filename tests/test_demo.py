"""The demo command on a fresh database seeds a complete, consistent study."""

import re

import pytest
from django.core.management import call_command

from studyapp.models import Answer, Comparison, Concept, GeneratedImage, GenerationRun, Method, MetricScore, Pair, Study

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


@pytest.fixture
def world_models(settings):
    settings.OFFLINE_MODELS = "world"


def test_demo_seeds_a_complete_consistent_study(world_models, capsys):
    call_command("demo", "--prompts", "2", "--seeds", "2", "--steps", "3")
    out = capsys.readouterr().out
    study = Study.objects.get(slug="demo")
    assert study.state == Study.State.PUBLISHED
    assert set(Concept.objects.values_list("slug", flat=True)) == {"dotted_ring", "stone_pyramid"}
    assert all(concept.references.count() == 5 for concept in Concept.objects.all())
    methods = Method.objects.filter(name__startswith="demo-")
    assert methods.count() == 3
    assert all(m.base_model.endswith("world/models/pipeline") and "{concept}" in m.personalization for m in methods)
    # 3 methods x 2 concepts x 2 prompts x 2 seeds, each a real stored PNG with its provenance
    images = GeneratedImage.objects.filter(method__in=methods)
    assert images.count() == 24
    assert all(image.file.storage.exists(image.file.name) and image.unet_evaluations for image in images)
    assert set(GenerationRun.objects.values_list("state", flat=True)) == {"done"}
    for metric in ("clip_ts", "clip_is", "dino_is"):
        assert MetricScore.objects.filter(image__in=images, metric=metric).count() == 24
    # gold and attention checks are built too, from hidden methods that raters never see named
    assert Pair.objects.filter(study=study, kind__in=["gold", "attention"]).exists()
    # 2 comparisons, each with one pair per (concept, prompt, seed) slot, images from the right methods
    assert Comparison.objects.filter(study=study).count() == 2
    pairs = Pair.objects.filter(study=study, kind="regular").select_related("comparison", "image_a", "image_b")
    assert pairs.count() == 16
    for pair in pairs:
        assert pair.image_a.method_id == pair.comparison.method_a_id
        assert pair.image_b.method_id == pair.comparison.method_b_id
        assert (pair.image_a.concept_id, pair.image_a.prompt.template, pair.image_a.seed_index) == (
            pair.image_b.concept_id,
            pair.image_b.prompt.template,
            pair.image_b.seed_index,
        )
        assert pair.image_a.seed == pair.image_b.seed
    assert "password '" in out and f"/s/{study.open_link_token}/" in out
    # progress: numbered steps, each announced before it starts, with counts
    assert re.findall(r"^\[(\d)/5\] ", out, re.MULTILINE) == ["1", "2", "3", "4", "5"]
    assert "6 runs of 2 prompts x 2 seeds at 3 steps" in out
    assert len(re.findall(r"^      run \d/6 .*: 4 images, 4 scored \(\d+\.\d s\)$", out, re.MULTILINE)) == 6
    assert "      24 images (" in out and "2 subjects with 10 reference photos" in out
    # oracle raters went through the assignment engine, so the results have numbers
    answers = Answer.objects.filter(pair__study=study)
    assert answers.exists() and all(a.rater.external_id.startswith("oracle-") for a in answers)
    for pair in study.pairs.all():
        assert pair.ratings_count == pair.answers.count() <= max(pair.target_ratings, 4)


def test_demo_twice_adds_no_images_and_resets_the_password(world_models, capsys, django_user_model):
    call_command("demo", "--prompts", "1", "--seeds", "1", "--steps", "2")
    first = capsys.readouterr().out
    call_command("demo", "--prompts", "1", "--seeds", "1", "--steps", "2")
    second = capsys.readouterr().out
    assert GeneratedImage.objects.filter(method__name__startswith="demo-").count() == 6
    assert "stored 0 answers" in second  # the oracle raters had finished: nothing is added
    password = second.split("password '")[1].split("'")[0]
    assert password not in first
    assert django_user_model.objects.get(username="admin").check_password(password)


def test_oracle_raters_prefer_on_text_the_sampler_the_judge_scores_higher(world_models, capsys):
    """The demo's results show a real effect: on the text question, the raters' interval excludes 50%
    on the side of the method whose images the judge finds closer to the prompt."""
    import numpy as np

    from studyapp.rating.oracle_view import JudgeView
    from studyapp.results.analysis import study_results
    from studyapp.results.exports import results_rows

    call_command("demo")  # the default design: 8 prompts x 4 seeds, 10 steps, 48 oracle raters
    study = Study.objects.get(slug="demo")
    view = JudgeView()
    judged_text = {}
    for pair in Pair.objects.filter(study=study, kind="regular").select_related("comparison"):
        a, b = view.scores(pair)
        judged_text.setdefault(pair.comparison_id, []).append(a["text"] - b["text"])
    rows = [
        r
        for r in results_rows(study_results(study))
        if r["analysis"] == "with_exclusions" and r["question_name"] == "text"
    ]
    assert len(rows) == 2 and all(row["n"] > 0 for row in rows), rows
    for row in rows:
        judge_prefers_a = np.mean(judged_text[row["comparison"]]) > 0
        if row["ci_low"] > 0.5 or row["ci_high"] < 0.5:
            assert (row["win_rate"] > 0.5) == judge_prefers_a, row
    # The comparison the judge separates most (Mixed vs Base, +0.21) is decided in every seeding measured:
    # its interval's lower end was 0.56-0.68 in three (docs/world.md).
    clearest = max(rows, key=lambda row: abs(np.mean(judged_text[row["comparison"]])))
    assert clearest["ci_low"] > 0.5 and np.mean(judged_text[clearest["comparison"]]) > 0, clearest
