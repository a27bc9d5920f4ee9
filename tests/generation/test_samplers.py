"""Sampler registry, parameter validation and the combination formulas (no model needed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from generation import samplers
from generation.errors import ParameterError
from generation.samplers import (
    CONCEPT,
    SAMPLER_NAMES,
    SUPERCLASS,
    SWAP_SUPERCLASS,
    SWAP_UNCOND,
    UNCOND,
    build_sampler,
    describe,
    json_schema,
    validate_params,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]

PAPER_DEFAULTS = {
    "base": {"w": 7.0},
    "superclass": {"w": 7.0},
    "mixed": {"w_c": 3.5, "w_s": 3.5},
    "switching": {"w": 7.0, "t_sw": 7},
    "multistage": {"w_c": 4.0, "w_s": 3.0, "t_sw": 10},
    "masked": {"t_sw": 3, "w_c0": 0.0, "w_s0": 7.0, "w_c": 3.5, "w_s": 3.5, "w": 7.0, "q": 0.7},
    "profusion": {"w_c": 3.5, "w_s": 3.5, "refine_steps": 1, "r": 1.0, "w_r": 7.0, "refine_seed": 10},
    "photoswap": {"t_sf": 5, "t_cm": 15, "t_sm": 20, "w_c": 7.0, "w_s": 7.0, "align_tokens": True},
}

INVALID = [
    ("mixed", {"w_s": -1}, "mixed: w_s: expected a number >= 0, got -1"),
    ("mixed", {"w_s": 51}, "mixed: w_s: expected a number <= 50, got 51"),
    ("mixed", {"w_s": "3.5"}, "mixed: w_s: expected a number in [0, 50], got '3.5'"),
    ("mixed", {"w_s": True}, "mixed: w_s: expected a number"),
    ("mixed", {"w_s": float("nan")}, "mixed: w_s: expected a number"),
    ("mixed", {"w_x": 1}, "mixed: unknown parameter 'w_x': expected one of w_c, w_s"),
    ("switching", {"t_sw": 2.5}, "switching: t_sw: expected an integer, got 2.5"),
    ("switching", {"t_sw": -1}, "switching: t_sw: expected an integer >= 0, got -1"),
    ("masked", {"q": 1.5}, "masked: q: expected a number <= 1, got 1.5"),
    ("profusion", {"r": 2}, "profusion: r: expected a number <= 1, got 2"),
    ("photoswap", {"align_tokens": "yes"}, "photoswap: align_tokens: expected true or false, got 'yes'"),
    ("nope", {}, "unknown sampler 'nope': expected one of base, superclass, mixed"),
]


def test_names_are_the_eight_samplers_in_order():
    assert SAMPLER_NAMES == (
        "base", "superclass", "mixed", "switching", "multistage", "masked", "profusion", "photoswap"
    )


def test_module_imports_without_torch():
    code = (
        "import sys, generation.samplers, generation.seeds, generation.prompts, generation.api;"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PROJECT_ROOT)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("name", SAMPLER_NAMES)
def test_defaults_are_the_papers_sd2_values(name):
    assert validate_params(name, {}) == PAPER_DEFAULTS[name]
    assert validate_params(name, None) == PAPER_DEFAULTS[name]


@pytest.mark.parametrize("name, params, message", INVALID)
def test_invalid_parameters_raise_clear_errors(name, params, message):
    with pytest.raises(ParameterError) as error:
        validate_params(name, params)
    assert str(error.value).startswith(message)
    assert isinstance(error.value, ValueError)


def test_overrides_are_filled_and_normalised():
    assert validate_params("multistage", {"t_sw": 5.0, "w_s": 2}) == {"w_c": 4.0, "w_s": 2.0, "t_sw": 5}
    assert isinstance(validate_params("multistage", {"t_sw": 5.0})["t_sw"], int)


def test_parameters_must_be_a_mapping():
    with pytest.raises(ParameterError, match="expected an object"):
        validate_params("base", [("w", 1)])


def test_describe_is_json_and_complete():
    rows = json.loads(json.dumps(describe()))
    assert [row["name"] for row in rows] == list(SAMPLER_NAMES)
    for row in rows:
        assert row["summary"] and row["equation"] and row["cost"]
        names = [param["name"] for param in row["parameters"]]
        assert names == list(PAPER_DEFAULTS[row["name"]])
        for param in row["parameters"]:
            assert set(param) == {"name", "type", "default", "minimum", "maximum", "description"}


@pytest.mark.parametrize("name", SAMPLER_NAMES)
def test_json_schema_matches_validation(name):
    schema = json_schema(name)
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert set(schema["properties"]) == set(PAPER_DEFAULTS[name])
    for key, prop in schema["properties"].items():
        assert prop["default"] == PAPER_DEFAULTS[name][key]
        if "minimum" in prop:
            with pytest.raises(ParameterError):
                validate_params(name, {key: prop["minimum"] - 1})


@pytest.mark.parametrize("name", SAMPLER_NAMES)
def test_sweep_presets_are_valid(name):
    grid = samplers.SWEEP_PRESETS[name]
    assert len(grid) >= 3
    for point in grid:
        validate_params(name, point)


def test_mixed_preset_keeps_total_guidance_at_seven():
    assert {"w_s": 0.0, "w_c": 7.0} in samplers.SWEEP_PRESETS["mixed"]
    assert all(p["w_c"] + p["w_s"] == 7.0 for p in samplers.SWEEP_PRESETS["mixed"])


# ---- combination formulas against the paper's equations, on known arrays

U, C, S = np.array([1.0, -2.0]), np.array([3.0, 0.5]), np.array([-1.0, 4.0])
PREDS = {UNCOND: U, CONCEPT: C, SUPERCLASS: S}


def combine(name, params, step, preds=PREDS, mask=None):
    return build_sampler(name, params).combine(step, preds, mask=mask).eps


def test_base_and_superclass_are_cfg():
    np.testing.assert_allclose(combine("base", {"w": 7.0}, 0), [1 + 7 * 2, -2 + 7 * 2.5])
    np.testing.assert_allclose(combine("superclass", {"w": 2.0}, 0), [1 + 2 * -2, -2 + 2 * 6])


def test_mixed_adds_both_guidance_terms():
    expected = U + 3.5 * (C - U) + 1.5 * (S - U)
    np.testing.assert_allclose(combine("mixed", {"w_c": 3.5, "w_s": 1.5}, 0), expected)
    np.testing.assert_allclose(expected, [1 + 7 - 3, -2 + 8.75 + 9])


def test_switching_uses_superclass_then_concept():
    params = {"w": 5.0, "t_sw": 2}
    np.testing.assert_allclose(combine("switching", params, 1, {UNCOND: U, SUPERCLASS: S}), U + 5 * (S - U))
    np.testing.assert_allclose(combine("switching", params, 2, {UNCOND: U, CONCEPT: C}), U + 5 * (C - U))


def test_multistage_uses_total_scale_before_switch():
    params = {"w_c": 4.0, "w_s": 3.0, "t_sw": 3}
    np.testing.assert_allclose(combine("multistage", params, 2, {UNCOND: U, SUPERCLASS: S}), U + 7 * (S - U))
    np.testing.assert_allclose(combine("multistage", params, 3), U + 4 * (C - U) + 3 * (S - U))


def test_masked_mixes_inside_and_guides_superclass_outside():
    params = {"t_sw": 1, "w_c0": 1.0, "w_s0": 6.0, "w_c": 3.0, "w_s": 2.0, "w": 7.0}
    np.testing.assert_allclose(combine("masked", params, 0), U + 1 * (C - U) + 6 * (S - U))
    mask = np.array([1.0, 0.0])
    inside = U + 3 * (C - U) + 2 * (S - U)
    outside = U + 7 * (S - U)
    np.testing.assert_allclose(combine("masked", params, 1, mask=mask), [inside[0], outside[1]])


def test_masked_needs_a_mask_after_the_switch():
    sampler = build_sampler("masked", {"t_sw": 1})
    assert not sampler.needs_mask(0) and sampler.needs_mask(1)
    with pytest.raises(ParameterError, match="expected a mask"):
        sampler.combine(1, PREDS, mask=None)


def test_profusion_refines_with_concept_guidance_and_steps_with_mixed():
    sampler = build_sampler("profusion", {"w_c": 2.0, "w_s": 1.0, "w_r": 6.0})
    np.testing.assert_allclose(sampler.refine_combine(0, {UNCOND: U, CONCEPT: C}).eps, U + 6 * (C - U))
    np.testing.assert_allclose(sampler.combine(0, PREDS).eps, U + 2 * (C - U) + 1 * (S - U))


def test_photoswap_guides_each_trajectory_separately():
    U2, S2 = np.array([0.0, 1.0]), np.array([2.0, 2.0])
    out = build_sampler("photoswap", {"w_c": 3.0, "w_s": 5.0}).combine(
        0, {UNCOND: U, CONCEPT: C, SWAP_UNCOND: U2, SWAP_SUPERCLASS: S2}
    )
    np.testing.assert_allclose(out.eps, U + 3 * (C - U))
    np.testing.assert_allclose(out.swap_eps, U2 + 5 * (S2 - U2))


def test_photoswap_swap_windows_count_initial_steps():
    sampler = build_sampler("photoswap", {"t_sf": 1, "t_cm": 3, "t_sm": 2})
    flags = [sampler.swap_flags(i) for i in range(4)]
    assert [f.self_features for f in flags] == [True, False, False, False]
    assert [f.self_maps for f in flags] == [True, True, False, False]
    assert [f.cross_maps for f in flags] == [True, True, True, False]


@pytest.mark.parametrize(
    "name, params, per_step",
    [
        ("base", {}, [2] * 10),
        ("superclass", {}, [2] * 10),
        ("mixed", {}, [3] * 10),
        ("switching", {"t_sw": 4}, [2] * 10),
        ("multistage", {"t_sw": 4}, [2] * 4 + [3] * 6),
        ("masked", {}, [3] * 10),
        ("profusion", {"refine_steps": 2}, [3 + 2 * 2] * 10),
        ("photoswap", {}, [4] * 10),
    ],
)
def test_evaluations_per_image_match_the_required_counts(name, params, per_step):
    assert build_sampler(name, params).evaluations_per_image(10) == sum(per_step)


def test_switching_evaluates_only_the_branches_of_its_phase():
    sampler = build_sampler("switching", {"t_sw": 2})
    assert sampler.branches(1) == (UNCOND, SUPERCLASS)
    assert sampler.branches(2) == (UNCOND, CONCEPT)
