"""A web process never pays for the model libraries: they are imported only by code that generates or scores.

The check runs in a fresh interpreter, because this test process has imported torch long ago (the
tiny model fixtures). The child starts Django on a throwaway SQLite database, imports every URL module
and every view module they name, serves a rater page and a results page, and reports what it imported.
"""

import json
import os
import subprocess
import sys

from tests.conftest import PROJECT_ROOT

HEAVY = ("torch", "diffusers", "transformers")

CHILD = r"""
import importlib, json, sys
import django
django.setup()
from django.test.utils import setup_test_environment
setup_test_environment()  # so that the responses name the templates they rendered
from django.core.management import call_command
call_command("migrate", verbosity=0)

from django.urls import URLPattern, URLResolver, get_resolver

def url_modules(resolver):
    yield resolver.urlconf_module.__name__ if hasattr(resolver.urlconf_module, "__name__") else resolver.urlconf_name
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            yield from url_modules(entry)
        elif isinstance(entry, URLPattern):
            yield entry.callback.__module__

modules = sorted({name for name in url_modules(get_resolver()) if isinstance(name, str)})
for name in modules:
    importlib.import_module(name)

from django.contrib.auth import get_user_model
from django.test import Client
from tests.rating.factories import open_rater, published_study
from tests.results.factories import add_answers

study = published_study()
add_answers(study, raters=3)
rater = open_rater(study, "child")
rating_page = Client().get(f"/r/{rater.token}/")
staff = Client()
staff.force_login(get_user_model().objects.create_superuser("child-owner", "o@example.org", "pw-123456"))
results_page = staff.get(f"/studies/{study.pk}/results/?n_resamples=100")
print(json.dumps({
    "url_modules": modules,
    "rating_page": [rating_page.status_code, rating_page.templates[0].name if rating_page.templates else ""],
    "results_page": [results_page.status_code, results_page.templates[0].name if results_page.templates else ""],
    "heavy": sorted(name for name in sys.modules if name.split(".")[0] in HEAVY),
}))
"""


def test_pages_and_url_modules_import_no_model_library(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "studyapp.settings",
        "PYTHONPATH": str(PROJECT_ROOT),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'child.sqlite3'}",
        "CELERY_BROKER_URL": "",  # tasks would run in-process; none is sent by these pages
        "MEDIA_ROOT": str(tmp_path / "media"),
    }
    code = f"HEAVY = {HEAVY!r}\n" + CHILD
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"studyapp.rating.urls", "studyapp.runs.urls", "studyapp.results.urls", "studyapp.api.urls"} <= set(
        report["url_modules"]
    )
    assert report["rating_page"] == [200, "studyapp/rating/rate.html"]
    assert report["results_page"] == [200, "studyapp/results/results.html"]
    assert report["heavy"] == []
