"""What the samplers share: the Sampler base's declarations, guidance outputs and the step-window bound."""

from __future__ import annotations

import numpy as np
import pytest

from generation.errors import ParameterError
from generation.samplers import MAIN, SWAP, GuidanceOutput, Sampler, validate_params
from generation.samplers.core import guided
from generation.samplers.mixed import MixedParams, MixedSampler
from generation.samplers.switching import SwitchingParams
from generation.steps import MAX_STEPS


def test_a_sampler_without_its_declarations_is_refused_at_definition():
    with pytest.raises(TypeError, match=r"expected class attributes .*sweep_preset"):

        class Incomplete(Sampler):
            name = "incomplete"
            Params = MixedParams
            summary = equation = cost = "x"


def test_a_sampler_takes_only_its_own_parameter_class():
    with pytest.raises(ParameterError, match="mixed: expected MixedParams, got SwitchingParams"):
        MixedSampler(SwitchingParams())
    assert MixedSampler().params == MixedParams()


def test_guidance_output_lists_the_trajectories_it_steps():
    assert list(GuidanceOutput(eps=1, branch_preds={}).by_trajectory()) == [MAIN]
    assert GuidanceOutput(eps=1, branch_preds={}, swap_eps=2).by_trajectory() == {MAIN: 1, SWAP: 2}


def test_guided_is_diffusers_cfg():
    np.testing.assert_allclose(guided(np.array([1.0]), np.array([3.0]), 7.0), [15.0])


def test_step_windows_reach_the_longest_run():
    assert validate_params("switching", {"t_sw": MAX_STEPS})["t_sw"] == MAX_STEPS
    with pytest.raises(ParameterError, match=f"expected an integer <= {MAX_STEPS}"):
        validate_params("switching", {"t_sw": MAX_STEPS + 1})
