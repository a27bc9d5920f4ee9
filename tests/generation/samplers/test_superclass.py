"""Superclass: classifier-free guidance on the superclass prompt."""

from __future__ import annotations

import numpy as np

from tests.generation.samplers.contract import SamplerContract, combine


class TestSuperclass(SamplerContract):
    name = "superclass"
    paper_defaults = {"w": 7.0}
    evaluation_counts = [({}, [2] * 10)]
    loop_counts = [(None, 2 * 4)]

    def test_is_cfg_on_the_superclass_prompt(self):
        np.testing.assert_allclose(combine("superclass", {"w": 2.0}, 0), [1 + 2 * -2, -2 + 2 * 6])
