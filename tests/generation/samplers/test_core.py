"""What the samplers share: the Sampler base's declarations, guidance outputs and the step-window bound."""

from __future__ import annotations

import numpy as np
import pytest

from generation.errors import ParameterError
from generation.samplers import CONCEPT, MAIN, SUPERCLASS, SWAP, GuidanceOutput, Sampler, build_sampler, validate_params
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
    assert validate_params("switching", {"t_sw": MAX_STEPS, "window_steps": MAX_STEPS})["t_sw"] == MAX_STEPS
    with pytest.raises(ParameterError, match=f"expected an integer <= {MAX_STEPS}"):
        validate_params("switching", {"t_sw": MAX_STEPS + 1})


def test_a_window_cannot_outlast_its_schedule():
    assert validate_params("switching", {"t_sw": 50})["t_sw"] == 50
    with pytest.raises(ParameterError, match=r"t_sw: expected an integer in \[0, 50\]"):
        validate_params("switching", {"t_sw": 51})
    with pytest.raises(ParameterError, match=r"t_sw: expected an integer in \[0, 10\]"):
        validate_params("switching", {"t_sw": 11, "window_steps": 10})


@pytest.mark.parametrize(("steps", "expected"), [(50, 7), (25, 3), (100, 14), (10, 1), (500, 70)])
def test_windows_are_rescaled_from_the_50_step_schedule(steps, expected):
    run = build_sampler("switching", {"t_sw": 7}).for_steps(steps)
    assert run.params.t_sw == expected and run.params.window_steps == steps


def test_rescaling_keeps_no_window_and_the_whole_schedule():
    for steps in (1, 7, 25, 100, 1000):
        assert build_sampler("switching", {"t_sw": 0}).for_steps(steps).params.t_sw == 0
        assert build_sampler("switching", {"t_sw": 50}).for_steps(steps).params.t_sw == steps


def test_a_window_counted_on_the_runs_own_steps_is_kept_as_is():
    sampler = build_sampler("switching", {"t_sw": 7, "window_steps": 10})
    assert sampler.for_steps(10) is sampler
    assert [sampler.branches(i)[1] for i in (6, 7)] == [SUPERCLASS, CONCEPT]


def test_samplers_without_windows_are_not_rescaled():
    sampler = build_sampler("mixed")
    assert sampler.for_steps(13) is sampler


def test_rescaling_leaves_the_built_sampler_unchanged():
    sampler = build_sampler("photoswap", paper_batching=True)
    run = sampler.for_steps(10)
    assert (sampler.params.t_sm, run.params.t_sm) == (20, 4)
    assert run.paper_batching and type(run) is type(sampler)


def _handovers(name, params, steps, scheduler):
    """The first timestep of each phase change of the sampler's branches in a run of ``steps`` steps."""
    scheduler.set_timesteps(steps)
    run = build_sampler(name, params).for_steps(steps)
    layouts = [run.branches(i) for i in range(steps)]
    timesteps = [int(t) for t in scheduler.timesteps]
    return [timesteps[i] for i in range(1, steps) if layouts[i] != layouts[i - 1]]


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("switching", {}),
        ("switching", {"t_sw": 20}),
        ("switching", {"t_sw": 1}),
        ("multistage", {}),
        ("masked", {}),
        ("photoswap", {"t_sf": 5, "t_cm": 15, "t_sm": 20, "w_c": 7.0}),
    ],
)
def test_a_handover_falls_at_the_same_timestep_within_one_step_at_25_50_and_100_steps(tiny_pipeline, name, params):
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler.from_config(tiny_pipeline.scheduler.config)
    [paper] = _handovers(name, params, 50, scheduler)
    for steps in (25, 100):
        step_width = scheduler.config.num_train_timesteps // steps
        handovers = _handovers(name, params, steps, scheduler)
        assert len(handovers) <= 1, (steps, handovers)
        handover = handovers[0] if handovers else int(scheduler.timesteps[0])  # a window shorter than one step
        assert abs(handover - paper) <= step_width, (name, params, steps, handover, paper)
