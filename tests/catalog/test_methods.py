"""Defining methods in the admin: parameters are checked against the sampler's schema."""

import json

import pytest

from studyapp.models import Method

pytestmark = pytest.mark.django_db


def _add(owner_client, **fields):
    data = {
        "name": "mixed-test",
        "description": "",
        "kind": "sampler",
        "sampler": "mixed",
        "params": "{}",
        "base_model": "",
        "personalization": "",
        "steps": "50",
        **fields,
    }
    return owner_client.post("/admin/studyapp/method/add/", data)


def test_a_method_is_saved_with_the_papers_defaults_filled_in(owner_client):
    response = _add(owner_client, params=json.dumps({"w_s": 3.5}))
    assert response.status_code == 302
    method = Method.objects.get(name="mixed-test")
    assert method.params["w_s"] == 3.5
    assert set(method.params) > {"w_s"}  # the other hyper-parameters take their defaults


@pytest.mark.parametrize(
    ("sampler", "params", "message"),
    [
        ("mixed", {"w_s": -1}, "mixed: w_s: expected a number"),
        ("mixed", {"nonsense": 1}, "nonsense"),
        ("switching", {"t_sw": "soon"}, "t_sw"),
    ],
)
def test_invalid_parameters_are_refused_with_the_reason(owner_client, sampler, params, message):
    response = _add(owner_client, sampler=sampler, params=json.dumps(params))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Method.objects.exists()


def test_an_impossible_step_window_is_refused_with_the_reason(owner_client):
    response = _add(owner_client, sampler="switching", params=json.dumps({"t_sw": 500}), steps="10")
    assert response.status_code == 200
    page = response.content.decode()
    assert "t_sw: expected an integer in [0, 50]" in page and "rescaled to the run&#x27;s 10 steps" in page
    assert not Method.objects.exists()


def test_a_method_stores_the_schedule_its_windows_count(owner_client):
    assert _add(owner_client, sampler="switching", params=json.dumps({"t_sw": 7}), steps="10").status_code == 302
    assert Method.objects.get().params == {"w": 7.0, "t_sw": 7, "window_steps": 50}


def test_an_external_method_takes_no_sampler(owner_client):
    response = _add(owner_client, kind="external", sampler="mixed")
    assert response.status_code == 200
    assert "An external method has no sampler" in response.content.decode()
    assert _add(owner_client, kind="external", sampler="", params="{}").status_code == 302


def _model_folder(path, class_name):
    path.mkdir()
    (path / "model_index.json").write_text(json.dumps({"_class_name": class_name}))
    return str(path)


@pytest.mark.parametrize("pipeline", ["StableDiffusionPipeline", "StableDiffusionXLPipeline", "PixArtAlphaPipeline"])
def test_a_base_model_of_each_backbone_is_accepted_for_every_sampler(owner_client, tmp_path, pipeline):
    folder = _model_folder(tmp_path / "model", pipeline)
    for sampler in ("masked", "photoswap"):
        assert _add(owner_client, name=f"{sampler}-x", sampler=sampler, base_model=folder).status_code == 302
    assert Method.objects.count() == 2


def test_a_base_model_of_another_pipeline_is_refused_with_the_reason(owner_client, tmp_path):
    folder = _model_folder(tmp_path / "kandinsky", "KandinskyPipeline")
    response = _add(owner_client, base_model=folder)
    assert response.status_code == 200
    assert "expected a StableDiffusionPipeline, StableDiffusionXLPipeline, PixArtAlphaPipeline pipeline" in (
        response.content.decode()
    )
    assert not Method.objects.exists()
