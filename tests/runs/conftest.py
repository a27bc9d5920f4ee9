"""The real services of the run tests: the test's Redis broker and `celery worker` processes."""

import pytest

from studyapp.celery import app as celery_app
from tests.runs.celery_workers import Workers
from tests.runs.factories import wait_for_other_sessions_to_close


@pytest.fixture
def broker(postgres, redis_url):
    """Send tasks to the test's Redis db (emptied before and after) instead of running them eagerly."""
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    saved = {key: celery_app.conf[key] for key in ("broker_url", "task_always_eager")}
    # Connections are made on first send, so this holds unless an earlier test sent to another broker.
    celery_app.conf.update(broker_url=redis_url, task_always_eager=False)
    yield redis_url
    celery_app.conf.update(saved)
    client.flushdb()


@pytest.fixture
def worker_generation_model():
    """The text-to-image model the workers use where a method names none; None means the tiny one."""
    return None


@pytest.fixture
def workers(broker, media_root, tiny_model, tmp_path, worker_generation_model):
    pool = Workers(broker, media_root, tiny_model, tmp_path, generation_model=worker_generation_model)
    yield pool
    pool.stop_all()
    print(pool.logs())
    wait_for_other_sessions_to_close()
