"""Base: classifier-free guidance on the concept prompt."""

from __future__ import annotations

import numpy as np

from tests.generation.samplers.contract import SamplerContract, combine


class TestBase(SamplerContract):
    name = "base"
    paper_defaults = {"w": 7.0}
    evaluation_counts = [({}, [2] * 10)]
    loop_counts = [(None, 2 * 4), ({"w": 0.0}, 1 * 4)]

    def test_is_cfg_on_the_concept_prompt(self):
        np.testing.assert_allclose(combine("base", {"w": 7.0}, 0), [1 + 7 * 2, -2 + 7 * 2.5])
