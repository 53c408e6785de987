"""Each task backend with a real worker: a live save, a backfill, a retry after a 429
and a worker killed mid-call, on Celery (prefork; Redis and RabbitMQ as brokers) and
on django-tasks-db's db_worker (no Redis at all)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.backends import scenarios
from tests.backends.workers import CeleryWorker, DbWorker

# Run with: pytest -m backends tests/backends (.ci/run steps 1b and 3c).
pytestmark = [pytest.mark.backends, pytest.mark.django_db(transaction=True)]


def test_celery_live_save(celery_backend: CeleryWorker, fake_provider: Any) -> None:
    scenarios.live_save(fake_provider, celery_backend.output)


def test_celery_backfill(celery_backend: CeleryWorker, fake_provider: Any) -> None:
    scenarios.backfill(fake_provider, celery_backend.output)


def test_celery_retry_after_429(celery_backend: CeleryWorker, fake_provider: Any) -> None:
    scenarios.retry_after_429(fake_provider, celery_backend.output)


def test_celery_worker_killed_mid_call(celery_backend: CeleryWorker, fake_provider: Any) -> None:
    """SIGKILL the prefork child holding the call; Celery starts another child."""

    def kill() -> None:
        busy = celery_backend.pool_processes()
        assert busy, celery_backend.output()
        for pid in busy:
            celery_backend.kill_pool_process(pid)

    scenarios.killed_mid_call(fake_provider, celery_backend.output, kill)


def test_db_worker_live_save(db_worker: DbWorker, fake_provider: Any) -> None:
    scenarios.live_save(fake_provider, db_worker.output)
    # The worker armed the sweep at its start (database queries in ready()) quietly.
    assert "Accessing the database during app initialization" not in db_worker.output()


def test_db_worker_backfill(db_worker: DbWorker, fake_provider: Any) -> None:
    scenarios.backfill(fake_provider, db_worker.output)


def test_db_worker_retry_after_429(db_worker: DbWorker, fake_provider: Any) -> None:
    scenarios.retry_after_429(fake_provider, db_worker.output)


def test_db_worker_killed_mid_call(db_worker: DbWorker, fake_provider: Any) -> None:
    """SIGKILL the db_worker (one process: it runs the task itself); start another."""
    replacement: list[DbWorker] = []

    def kill() -> None:
        db_worker.kill()
        replacement.append(DbWorker())

    def describe() -> str:
        parts = [f"killed worker:\n{db_worker.output()}"]
        parts += [f"replacement worker:\n{worker.output()}" for worker in replacement]
        return "\n".join([*parts, "tasks:", *db_worker.task_rows()])

    try:
        scenarios.killed_mid_call(fake_provider, describe, kill)
    finally:
        for worker in replacement:
            worker.stop()
