"""Fixtures of tests/backends: the settings of each backend under test, and its
real worker. They run where the services are (Redis, RabbitMQ on 127.0.0.1) and are
skipped, saying why, where they are not."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.backends import sending
from tests.backends.workers import RABBITMQ_URL, REDIS_URL, CeleryWorker, DbWorker, port_open

# Short enough that a killed worker's job is recovered within seconds.
RECOVERY = {"JOB_TIMEOUT": 3, "SWEEP_INTERVAL": 1, "PENDING_GRACE": 2, "CHUNK_SIZE": 4}
BROKERS = {
    "redis": (REDIS_URL, ("127.0.0.1", 6379)),
    "rabbitmq": (RABBITMQ_URL, ("127.0.0.1", 5672)),
}


def celery_settings(broker: str, queue: str) -> dict[str, Any]:
    """Celery on ``broker``; the shared state in Redis with the Redis broker, in the
    database cache with RabbitMQ (a deployment with no Redis at all)."""
    shared: dict[str, Any] = (
        {"SHARED_STATE": "redis", "REDIS_URL": REDIS_URL}
        if broker == "redis"
        else {"SHARED_STATE": "cache", "SHARED_STATE_CACHE": "shared"}
    )
    return {
        "TASK_BACKEND": "celery",
        "CELERY_APP": "tests.backends.sending.app",
        "CELERY_QUEUE": queue,
        **shared,
        **RECOVERY,
    }


@pytest.fixture(params=list(BROKERS))
def celery_backend(request: Any, settings: Any, fake_provider: Any) -> Iterator[CeleryWorker]:
    """A real prefork Celery worker on each broker, consuming a queue of its own."""
    pytest.importorskip("celery", reason="Celery is not installed (the celery extra)")
    from celery import Celery

    url, (host, port) = BROKERS[request.param]
    if not port_open(host, port):
        pytest.skip(f"no {request.param} on {host}:{port}")
    queue = f"ai-fields-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    settings.AI_FIELDS = {**settings.AI_FIELDS, **celery_settings(request.param, queue)}
    sending.app = Celery(f"sender-{queue}", broker=url, set_as_current=False)
    if request.param == "redis":
        _flush_redis()
    else:
        _clear_shared_cache()
    worker = CeleryWorker(url, queue)
    try:
        worker.wait_ready(sending.app)
        yield worker
    finally:
        worker.stop()
        _purge(queue)
        sending.app.close()
        sending.app = None


@pytest.fixture
def db_worker(settings: Any, fake_provider: Any) -> Iterator[DbWorker]:
    """django-tasks-db's db_worker; the shared state in the database cache."""
    pytest.importorskip("django_tasks_db", reason="django-tasks-db is not installed")
    settings.AI_FIELDS = {
        **settings.AI_FIELDS,
        "TASK_BACKEND": "django",
        "SHARED_STATE": "cache",
        "SHARED_STATE_CACHE": "shared",
        **RECOVERY,
    }
    _clear_shared_cache()
    worker = DbWorker()
    try:
        worker.wait_ready()
        yield worker
    finally:
        worker.stop()


def _flush_redis() -> None:
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()


def _clear_shared_cache() -> None:
    """Forget the marks an earlier test left in the database cache (a table the test
    flush keeps): a sweep mark naming a task that flush deleted would keep the new
    worker from arming the sweep, and a killed worker's job would never be recovered."""
    from django.core.cache import caches

    caches["shared"].clear()


def _purge(queue: str) -> None:
    """Drop what the test left on its queue (sweeps scheduled for later)."""
    try:
        with sending.app.connection_for_write() as connection:
            connection.default_channel.queue_delete(queue)
    except Exception:  # the broker is gone: nothing to drop
        pass
