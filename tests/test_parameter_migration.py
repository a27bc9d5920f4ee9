"""Migration 0008: stored sampler parameters keep their meaning under the 50-step window convention."""

import importlib

import pytest
from django.apps import apps

from generation.samplers import build_sampler, validate_params
from studyapp.models import GenerationRun, Method, Sweep
from tests import factories

migration = importlib.import_module("studyapp.migrations.0008_sampler_window_steps")

OLD_SWITCHING = {"w": 7.0, "t_sw": 7}
OLD_PHOTOSWAP = {"t_sf": 5, "t_cm": 15, "t_sm": 20, "w_c": 7.0, "w_s": 7.0, "align_tokens": True}


def test_windows_get_the_steps_they_were_counted_on():
    upgraded = migration.upgraded("switching", OLD_SWITCHING, 10)
    assert upgraded == {**OLD_SWITCHING, "window_steps": 10}
    sampler = build_sampler("switching", upgraded).for_steps(10)
    assert sampler.params.t_sw == 7  # 7 of the run's 10 steps, as before


def test_photoswap_alignment_flag_becomes_the_alignment_it_selected():
    assert migration.upgraded("photoswap", OLD_PHOTOSWAP, 50)["token_alignment"] == "template"
    assert migration.upgraded("photoswap", {**OLD_PHOTOSWAP, "align_tokens": False}, 50)["token_alignment"] == "index"
    validate_params("photoswap", migration.upgraded("photoswap", OLD_PHOTOSWAP, 50))


def test_samplers_without_windows_and_converted_rows_are_left_alone():
    assert migration.upgraded("mixed", {"w_c": 3.5, "w_s": 3.5}, 10) == {"w_c": 3.5, "w_s": 3.5}
    current = validate_params("switching", {"t_sw": 3})
    assert migration.upgraded("switching", current, 10) == current


def test_downgrade_inverts_the_upgrade():
    for sampler, params, steps in (("switching", OLD_SWITCHING, 10), ("photoswap", OLD_PHOTOSWAP, 50)):
        assert migration.downgraded(sampler, migration.upgraded(sampler, params, steps), steps) == params


@pytest.mark.django_db
def test_stored_methods_runs_and_sweep_grids_are_converted():
    method = Method.objects.create(name="old-switching", sampler="switching", params=OLD_SWITCHING, steps=10)
    mixed = Method.objects.create(name="old-mixed", sampler="mixed", params={"w_c": 3.5, "w_s": 3.5}, steps=10)
    run = GenerationRun.objects.create(method=method, params=OLD_SWITCHING, steps=25, seed_indices=[0])
    sweep = Sweep.objects.create(
        name="old", sampler="photoswap", grid=[OLD_PHOTOSWAP], steps=20, prompt_set=factories.prompt_set()
    )
    migration.forwards(apps, None)
    method.refresh_from_db(), mixed.refresh_from_db(), run.refresh_from_db(), sweep.refresh_from_db()
    assert method.params["window_steps"] == 10 and run.params["window_steps"] == 25
    assert mixed.params == {"w_c": 3.5, "w_s": 3.5}
    assert sweep.grid == [{**migration.upgraded("photoswap", OLD_PHOTOSWAP, 20)}]
    assert sweep.grid[0]["window_steps"] == 20 and "align_tokens" not in sweep.grid[0]
    migration.backwards(apps, None)
    method.refresh_from_db()
    assert method.params == OLD_SWITCHING
