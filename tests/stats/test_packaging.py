"""The statistics package stays pure numpy/scipy: no Django, no web code, and every public name importable."""

import ast
import os
import subprocess
import sys
from pathlib import Path

from studyapp import stats

ROOT = Path(__file__).resolve().parents[2]


def test_stats_modules_import_nothing_from_django_or_the_web_side():
    for path in sorted((ROOT / "studyapp" / "stats").glob("*.py")):
        tree = ast.parse(path.read_text())
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        outside = {name for name in imported if name.split(".")[0] in {"django", "rest_framework", "studyapp"}}
        assert {name for name in outside if not name.startswith("studyapp.stats")} == set(), path.name


def test_public_names_are_importable_from_the_package():
    for name in stats.__all__:
        assert getattr(stats, name) is not None
    from studyapp.stats import SampleSizePlan, plan_sample_size  # the planner page imports these

    assert plan_sample_size(0.6).n_decisive == 194 and SampleSizePlan.__name__ == "SampleSizePlan"


def test_stats_run_without_django_settings():
    code = (
        "from studyapp import stats; "
        "t = stats.AnswerTable.from_lists(comparison=[0]*4, question=[0]*4, rater=[1,2,3,4], subject=[1,2,3,4], "
        "prompt=[1,1,2,2], outcome=[1,1,-1,0]); "
        "r = stats.analyse(t, [stats.ComparisonSpec(0, 1, 2)], stats.AnalysisSettings(n_resamples=20)); "
        "print(r.rows[0].estimate.wins)"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["DJANGO_SETTINGS_MODULE"] = "settings_that_do_not_exist"
    env["PYTHONPATH"] = str(ROOT)
    completed = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "2"
