"""Configuration from the environment: strict parsing, and a deployable production profile."""

import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from studyapp import config
from tests.conftest import PROJECT_ROOT


def _manage(*args, **env):
    # The browser tests allow async-unsafe ORM calls in this process; a deployment never would.
    dropped = ("DEBUG", "SECRET_KEY", "HTTPS", "ALLOWED_HOSTS", "DJANGO_ALLOW_ASYNC_UNSAFE", "DJANGO_SETTINGS_MODULE")
    clean = {k: v for k, v in os.environ.items() if k not in dropped}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=PROJECT_ROOT, env={**clean, **env}, capture_output=True, text=True
    )


def test_check_deploy_passes_with_production_settings():
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DEBUG="0",
        HTTPS="1",
        SECRET_KEY="k3v-9Qz!x2LpR7sW0aJm#yTn4bV8cE1uH6gD5fK-oZiA3rNqP-w7Lx2",
        ALLOWED_HOSTS="eval.example.org",
        CELERY_BROKER_URL="",
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_deploy_flags_a_missing_secret_key():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", DEBUG="0", HTTPS="1", CELERY_BROKER_URL="")
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stdout + result.stderr


def test_malformed_boolean_names_the_variable(monkeypatch):
    monkeypatch.setenv("DEBUG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="DEBUG: expected one of"):
        config.env_bool("DEBUG")


def test_malformed_integer_names_the_variable(monkeypatch):
    monkeypatch.setenv("MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(ImproperlyConfigured, match="MAX_IMAGE_PIXELS: expected an integer, got 'lots'"):
        config.env_int("MAX_IMAGE_PIXELS", 1)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("lots", "expected a number, got 'lots'"),
        ("0", "expected a number > 0, got 0"),
        ("-2", "expected a number > 0, got -2"),
    ],
)
def test_a_malformed_or_non_positive_memory_budget_names_the_variable(monkeypatch, raw, message):
    monkeypatch.setenv("GENERATION_MEMORY_BUDGET_GIB", raw)
    with pytest.raises(ImproperlyConfigured, match=f"GENERATION_MEMORY_BUDGET_GIB: {message}"):
        config.env_float("GENERATION_MEMORY_BUDGET_GIB", above=0)


def test_an_unset_memory_budget_is_none_and_a_set_one_a_number(monkeypatch):
    monkeypatch.delenv("GENERATION_MEMORY_BUDGET_GIB", raising=False)
    assert config.env_float("GENERATION_MEMORY_BUDGET_GIB", above=0) is None
    monkeypatch.setenv("GENERATION_MEMORY_BUDGET_GIB", " 40.5 ")
    assert config.env_float("GENERATION_MEMORY_BUDGET_GIB", above=0) == 40.5


def test_unknown_database_scheme_is_refused():
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL"):
        config.database_from_url("oracle2://nowhere/db")


def test_database_url_selects_postgres():
    parsed = config.database_from_url("postgres://postgres@127.0.0.1:5432/study")
    assert parsed["ENGINE"] == "django.db.backends.postgresql"
    assert parsed["NAME"] == "study"


def test_missing_generation_model_folder_fails_the_system_check():
    result = _manage("check", DEBUG="1", GENERATION_MODEL="./no/such/model", CELERY_BROKER_URL="")
    assert result.returncode != 0
    assert "studyapp.E002" in result.stderr
