"""The shipped world models: intact, within budget, and doing what the paper's samplers rely on.

Small grids of the measurements in bench/world.py (docs/world.md has the full ones), with thresholds
below the measured values and above chance. The subject LoRAs and the Mixed trade-off are not asserted:
on the shipped models they do not yet show the subject (docs/world.md).
"""

import numpy as np
import pytest

from generation.world import evaluation
from generation.world.manifest import changed_files
from generation.world.paths import JUDGE, PIPELINE, SHIPPED_MODELS

pytestmark = pytest.mark.slow
STEPS = 10


@pytest.fixture(scope="module")
def judge():
    from generation.world.judge import Judge

    return Judge(JUDGE)


def test_the_shipped_models_match_their_manifest_and_fit_in_25_mb():
    import json

    manifest = json.loads((SHIPPED_MODELS / "manifest.json").read_text())
    assert changed_files(SHIPPED_MODELS) == []
    assert manifest["total_bytes"] <= 25 * 1024 * 1024
    assert "world train" in manifest["command"] and manifest["seed"] == 0


def test_the_judge_reads_fresh_renders(judge):
    from generation.world.data import LABELS, render_set

    rendered = render_set(120, seed=999, subject_share=0.3, workers=1)
    readings = judge.read(rendered.images)
    floors = {"scene": 0.9, "colour": 0.9, "subject": 0.9, "shape": 0.6}  # measured: 1.0, 0.99, 0.995, 0.72
    for head, floor in floors.items():
        accuracy = np.mean([LABELS[head].index(r[head]) == rendered.labels[head][i] for i, r in enumerate(readings)])
        assert accuracy > floor, (head, accuracy)


def test_the_base_model_follows_prompts(judge):
    result = evaluation.prompt_following(
        judge, PIPELINE, [0, 1], STEPS, ("ball", "box", "star"), evaluation.SCENE_TEMPLATES[:4]
    )
    assert result["images"] == 24
    # measured here: scene 1.0, shape 0.42 (chance: 1/8 and 1/6); docs/world.md has the full grid
    assert result["scene"] >= 0.8 and result["shape"] >= 0.3, result
