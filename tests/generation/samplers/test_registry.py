"""The sampler registry: names, validation by name, descriptions, and an import that needs no torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from generation.errors import ParameterError
from generation.samplers import SAMPLER_NAMES, SAMPLERS, SWEEP_PRESETS, build_sampler, describe, validate_params

PROJECT_ROOT = Path(__file__).resolve().parents[3]

INVALID = [
    ("mixed", {"w_s": -1}, "mixed: w_s: expected a number >= 0, got -1"),
    ("mixed", {"w_s": 51}, "mixed: w_s: expected a number <= 50, got 51"),
    ("mixed", {"w_s": "3.5"}, "mixed: w_s: expected a number in [0, 50], got '3.5'"),
    ("mixed", {"w_s": True}, "mixed: w_s: expected a number"),
    ("mixed", {"w_s": float("nan")}, "mixed: w_s: expected a number"),
    ("mixed", {"w_x": 1}, "mixed: unknown parameter 'w_x': expected one of w_c, w_s"),
    ("switching", {"t_sw": 2.5}, "switching: t_sw: expected an integer, got 2.5"),
    ("switching", {"t_sw": -1}, "switching: t_sw: expected an integer >= 0, got -1"),
    ("switching", {"t_sw": 1001}, "switching: t_sw: expected an integer <= 1000, got 1001"),
    ("masked", {"q": 1.5}, "masked: q: expected a number <= 1, got 1.5"),
    ("profusion", {"r": 2}, "profusion: r: expected a number <= 1, got 2"),
    ("photoswap", {"token_alignment": "yes"}, "photoswap: token_alignment: expected one of index, template, got 'yes'"),
    (
        "switching",
        {"t_sw": 60},
        "switching: t_sw: expected an integer in [0, 50] (steps of the 50-step schedule that window_steps sets)",
    ),
    (
        "photoswap",
        {"t_sf": 1, "t_cm": 2, "t_sm": 8, "window_steps": 4},
        "photoswap: t_sm: expected an integer in [0, 4]",
    ),
    ("masked", {"w": "7"}, "masked: w: expected a number in [0, 50] (or null), got '7'"),
    ("nope", {}, "unknown sampler 'nope': expected one of base, superclass, mixed"),
]


def test_names_are_the_eight_samplers_in_order():
    assert SAMPLER_NAMES == (
        "base",
        "superclass",
        "mixed",
        "switching",
        "multistage",
        "masked",
        "profusion",
        "photoswap",
    )
    assert list(SWEEP_PRESETS) == list(SAMPLER_NAMES)
    assert all(SAMPLERS[name].name == name for name in SAMPLER_NAMES)


def test_module_imports_without_torch():
    code = (
        "import sys, generation.samplers, generation.seeds, generation.prompts, generation.api;"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PROJECT_ROOT)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(("name", "params", "message"), INVALID)
def test_invalid_parameters_raise_clear_errors(name, params, message):
    with pytest.raises(ParameterError) as error:
        validate_params(name, params)
    assert str(error.value).startswith(message)
    assert isinstance(error.value, ValueError)


def test_an_impossible_window_names_the_run_steps():
    with pytest.raises(ParameterError) as error:
        validate_params("switching", {"t_sw": 500}, steps=10)
    assert str(error.value) == (
        "switching: t_sw: expected an integer in [0, 50] (steps of the 50-step schedule that window_steps sets, "
        "rescaled to the run's 10 steps), got 500"
    )
    with pytest.raises(ParameterError, match=r"steps: expected an integer in \[1, 1000\]"):
        validate_params("switching", {}, steps=0)


def test_describe_names_choices_nullable_weights_and_step_windows():
    [photoswap] = [row for row in describe() if row["name"] == "photoswap"]
    by_name = {param["name"]: param for param in photoswap["parameters"]}
    assert by_name["token_alignment"]["choices"] == ["index", "template"]
    assert by_name["t_sm"]["step_window"] and "step_window" not in by_name["w_c"]
    [masked] = [row for row in describe() if row["name"] == "masked"]
    assert [param["nullable"] for param in masked["parameters"] if param["name"] == "w"] == [True]


def test_unknown_sampler_cannot_be_built():
    with pytest.raises(ParameterError, match="unknown sampler 'fancy'"):
        build_sampler("fancy")


def test_overrides_are_filled_and_normalised():
    assert validate_params("multistage", {"t_sw": 5.0, "w_s": 2}) == {
        "w_c": 4.0,
        "w_s": 2.0,
        "t_sw": 5,
        "window_steps": 50,
    }
    assert isinstance(validate_params("multistage", {"t_sw": 5.0})["t_sw"], int)


def test_parameters_must_be_a_mapping():
    with pytest.raises(ParameterError, match="expected an object"):
        validate_params("base", [("w", 1)])


def test_describe_is_json_and_complete():
    rows = json.loads(json.dumps(describe()))
    assert [row["name"] for row in rows] == list(SAMPLER_NAMES)
    for row in rows:
        assert row["summary"] and row["equation"] and row["cost"]
        for param in row["parameters"]:
            required = {"name", "type", "default", "minimum", "maximum", "description"}
            assert required <= set(param) <= required | {"choices", "nullable", "step_window"}


def test_built_sampler_carries_the_validated_parameters():
    sampler = build_sampler("mixed", {"w_s": 2})
    assert (sampler.params.w_c, sampler.params.w_s) == (3.5, 2.0)
    assert repr(sampler) == "MixedSampler(MixedParams(w_c=3.5, w_s=2.0))"
