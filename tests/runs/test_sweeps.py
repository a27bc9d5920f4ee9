"""Sweeps: presets, grids checked before anything is queued, one method and one run per point."""

import pytest
from django.core.exceptions import ValidationError

from generation.samplers import SWEEP_PRESETS
from studyapp.models import GenerationBatch, GenerationRun, Method, Sweep
from studyapp.runs.sweeps import grid_of, launch_sweep
from tests import factories

pytestmark = pytest.mark.django_db


def make_sweep(**fields) -> Sweep:
    values = {
        "name": "dogs",
        "sampler": "mixed",
        "preset": "mixed",
        "prompt_set": factories.prompt_set(),
        "seed_indices": [0, 1],
        "steps": 2,
    }
    values.update(fields)
    sweep = Sweep.objects.create(**values)
    sweep.concepts.add(factories.concept())
    return sweep


def test_a_preset_sweep_makes_one_method_and_run_per_grid_point(django_capture_on_commit_callbacks):
    sweep = make_sweep()
    with django_capture_on_commit_callbacks() as sent:
        made = launch_sweep(sweep)
    grid = SWEEP_PRESETS["mixed"]
    assert len(made) == len(grid) == sweep.runs.count()
    assert [run.method.params["w_s"] for run in made] == [point["w_s"] for point in grid]
    assert all(run.state == GenerationRun.State.QUEUED and run.images_total == 4 for run in made)
    assert len(sent) == GenerationBatch.objects.count() == len(grid) * 2  # one task per (concept, prompt)
    assert made[0].method.name == "dogs-w_s0-w_c7"


def test_every_preset_is_valid_for_its_sampler():
    for sampler, grid in SWEEP_PRESETS.items():
        assert grid_of(sampler, sampler, []) == grid


def test_a_custom_grid_replaces_the_preset():
    sweep = make_sweep(preset="", grid=[{"t_sw": 3}, {"t_sw": 7.0}], sampler="switching")
    made = launch_sweep(sweep)
    assert [run.method.name for run in made] == ["dogs-t_sw3", "dogs-t_sw7"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"grid": [{"w_s": 2.0}, {"w_s": 99.0}]}, "w_s"),
        ({"grid": [{"nonsense": 1}]}, "unknown parameter 'nonsense'"),
        ({"preset": "nope"}, "expected one of"),
        ({"preset": "", "grid": []}, "expected a preset or a grid"),
        ({"sampler": "nope"}, "expected one of"),
        ({"seed_indices": []}, "non-empty list"),
        ({"seed_indices": [0, 0]}, "each seed index once"),
        ({"steps": 0}, "[1, 1000]"),
    ],
)
def test_an_invalid_sweep_queues_nothing(fields, message, django_capture_on_commit_callbacks):
    sweep = make_sweep(**fields)
    with (
        django_capture_on_commit_callbacks() as sent,
        pytest.raises(ValidationError, match=message.replace("[", r"\[")),
    ):
        launch_sweep(sweep)
    assert (sent, GenerationRun.objects.count(), Method.objects.count()) == ([], 0, 0)


def test_a_sweep_without_concepts_queues_nothing():
    sweep = make_sweep()
    sweep.concepts.clear()
    with pytest.raises(ValidationError, match="at least one concept"):
        launch_sweep(sweep)
    assert GenerationRun.objects.count() == 0


def test_a_name_clash_with_a_different_method_is_refused():
    Method.objects.create(name="dogs-t_sw3", sampler="base")
    sweep = make_sweep(preset="", grid=[{"t_sw": 3}], sampler="switching")
    with pytest.raises(ValidationError, match="exists with other settings"):
        launch_sweep(sweep)


def test_an_existing_method_with_the_same_settings_is_reused():
    from generation.samplers import validate_params

    existing = Method.objects.create(
        name="dogs-t_sw3", sampler="switching", params=validate_params("switching", {"t_sw": 3}), steps=2
    )
    made = launch_sweep(make_sweep(preset="", grid=[{"t_sw": 3}], sampler="switching"))
    assert made[0].method == existing and Method.objects.count() == 1


def test_the_presets_are_the_papers_section_4_grids():
    assert [point["t_sw"] for point in grid_of("switching", "switching", [])] == [1, 3, 5, 7, 10, 20, 30, 40]
    assert [point["q"] for point in grid_of("masked", "masked", [])] == [0.3, 0.5, 0.7, 0.9]
    windows = [(p["t_sf"], p["t_cm"], p["t_sm"]) for p in grid_of("photoswap", "photoswap", [])]
    assert windows == [(1, 10, 15), (5, 15, 20), (10, 20, 25)]


def test_a_preset_sweep_at_few_steps_stores_windows_on_the_50_step_schedule():
    made = launch_sweep(make_sweep(preset="switching", sampler="switching", steps=10))
    assert {run.method.params["window_steps"] for run in made} == {50}
    assert [run.params["t_sw"] for run in made] == [1, 3, 5, 7, 10, 20, 30, 40]
    assert {run.steps for run in made} == {10}


def test_an_impossible_window_is_refused_naming_the_steps(django_capture_on_commit_callbacks):
    sweep = make_sweep(preset="", grid=[{"t_sw": 3}, {"t_sw": 500}], sampler="switching", steps=10)
    with django_capture_on_commit_callbacks() as sent, pytest.raises(ValidationError) as error:
        launch_sweep(sweep)
    assert "t_sw: expected an integer in [0, 50]" in str(error.value)
    assert "rescaled to the run's 10 steps" in str(error.value)
    assert (sent, Method.objects.count()) == ([], 0)
