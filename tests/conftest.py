"""Shared fixtures: isolated media, personas, the DreamBooth sample data, and the real services."""

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() == "true"


def need_service(reason: str):
    """Skip locally when a service is missing; in CI a missing service is a failure, never a skip."""
    if IN_CI:
        pytest.fail(f"CI needs {reason}")
    pytest.skip(f"needs {reason}")


def reachable(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """The offline tiny model, built once per test session through the library's own code path."""
    from generation.tiny import ensure_tiny_model

    return ensure_tiny_model(tmp_path_factory.getbasetemp() / "tiny-model")


@pytest.fixture
def tiny_model(settings, tiny_model_dir):
    settings.GENERATION_MODEL = str(tiny_model_dir)
    settings.TINY_MODEL_DIR = tiny_model_dir  # the tiny CLIP and DINO are built beside it
    return tiny_model_dir


@pytest.fixture(scope="session")
def dreambooth_dir() -> Path:
    path = Path(os.environ.get("DREAMBOOTH_DIR") or PROJECT_ROOT.parent / "shared" / "dreambooth")
    if not path.is_dir():
        need_service(f"the DreamBooth sample photos at {path}")
    return path


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("CELERY_BROKER_URL") or "redis://127.0.0.1:6379/15"
    if not reachable(url):
        need_service(f"Redis at {url}")
    return url


@pytest.fixture
def postgres(settings):
    """Tests about Postgres-only behaviour (row locks, SKIP LOCKED) run only against Postgres."""
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        need_service("PostgreSQL (set DATABASE_URL=postgres://...)")


@pytest.fixture
def owner(django_user_model):
    return django_user_model.objects.create_superuser("owner", "owner@example.org", "owner-pass-123")


@pytest.fixture
def outsider(django_user_model):
    return django_user_model.objects.create_user("outsider", "outsider@example.org", "outsider-pass-123")


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client
