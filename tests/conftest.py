"""Shared fixtures: the fake provider server, Redis reset, and worker drivers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings

from django_ai_fields.providers.base import clients
from django_ai_fields.queues import get_queue
from django_ai_fields.rq_worker import SimpleWorker
from tests.fake_provider import FakeProvider, running_fake_provider

REAL_REDIS = bool(os.environ.get("REDIS_URL"))
ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    """Django's deprecation warnings fail a test that meets them in its own code too
    (pyproject.toml does it for the package). Their class names change with every
    Django release, so they are read from the installed Django."""
    from django.utils import deprecation

    for name in dir(deprecation):
        if name.startswith("RemovedIn") and name.endswith("Warning"):
            config.addinivalue_line(
                "filterwarnings", f"error::django.utils.deprecation.{name}:tests"
            )


@pytest.fixture(scope="session")
def fake_provider_server() -> Iterator[FakeProvider]:
    with running_fake_provider() as server:
        yield server


@pytest.fixture
def fake_provider(fake_provider_server: FakeProvider, settings) -> Iterator[FakeProvider]:  # type: ignore[no-untyped-def]
    """The fake server, reset, with every provider pointed at it (OpenAI by default)."""
    fp = fake_provider_server
    fp.reset()
    settings.AI_FIELDS = {
        **settings.AI_FIELDS,
        "DEFAULT_PROVIDER": "openai",
        "PROVIDERS": {
            "openai": {"API_KEY": "sk-test-openai", "BASE_URL": fp.openai_base_url, "TIMEOUT": 5},
            "anthropic": {
                "API_KEY": "sk-ant-test",
                "BASE_URL": fp.anthropic_base_url,
                "TIMEOUT": 5,
                "DEFAULT_MODEL": "claude-haiku-4-5",
            },
            "azure": {"API_KEY": "azure-key", "BASE_URL": fp.azure_endpoint, "TIMEOUT": 5},
        },
    }
    clients.clear()
    yield fp
    clients.clear()


@pytest.fixture(autouse=True)
def clean_redis() -> Iterator[None]:
    get_queue().connection.flushdb()
    yield


class Worker:
    """Runs queued jobs: an in-process SimpleWorker on fakeredis, or a real
    ``rqworker`` subprocess when REDIS_URL points at a real Redis."""

    def __init__(self) -> None:
        self.real = REAL_REDIS

    def drain(self) -> None:
        """Process every job on the queue (and the ones they enqueue) until empty."""
        if self.real:
            subprocess.run(
                self.command("--burst"),
                env=self.env(),
                cwd=ROOT,
                check=True,
                timeout=120,
                capture_output=True,
            )
        else:
            queue = get_queue()
            SimpleWorker([queue], connection=queue.connection).work(burst=True)

    def drain_parallel(self, processes: int) -> None:
        """Process the queue with several workers at once: real ``rqworker --burst``
        processes with a real Redis; otherwise threads running the queued jobs.
        Each worker gets a drain of its own (a burst of saves enqueues one), so the
        AI jobs run in several processes (threads) at once."""
        if self.real:
            for _ in range(processes - 1):
                get_queue().enqueue("django_ai_fields.jobs.tasks.run_drain")
            workers = [
                subprocess.Popen(
                    self.command("--burst"),
                    env=self.env(),
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for _ in range(processes)
            ]
            for process in workers:
                assert process.wait(timeout=300) == 0
            return
        queue = get_queue()
        job_ids = [job.args[0] for job in queue.get_jobs() if job.func_name.endswith("run_job")]
        queue.empty()
        with ThreadPoolExecutor(processes) as pool:
            runs = [pool.submit(_run_in_thread, "run_job", job_id) for job_id in job_ids]
            runs += [pool.submit(_run_in_thread, "run_drain") for _ in range(processes)]
            for run in runs:
                run.result()
        self.drain()  # whatever the jobs enqueued themselves (retries)

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "django", "rqworker", "default", *args]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="tests.settings",
            AI_FIELDS_WORKER_PROCESS="1",
            AI_FIELDS_TEST_OVERRIDES=json.dumps(django_settings.AI_FIELDS),
            AI_FIELDS_TEST_SQLITE=str(django_settings.DATABASES["default"]["NAME"]),
            AI_FIELDS_TEST_DB_NAME=str(django_settings.DATABASES["default"]["NAME"]),
            AI_FIELDS_TEST_REDIS_DB=str(getattr(django_settings, "REDIS_TEST_DB", 0)),
            AI_FIELDS_TEST_MEDIA_ROOT=str(django_settings.MEDIA_ROOT),
            PYTHONPATH=str(ROOT),
        )
        return env

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        """A long-running real worker (only with a real Redis), in its own process
        group; ``args`` go to ``rqworker`` (``--with-scheduler``)."""
        return subprocess.Popen(
            self.command(*args),
            env=self.env(),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )


def _run_in_thread(entry_point: str, *args: Any) -> object:
    """An RQ entry point (``run_job``, ``run_drain``) run in a thread of its own."""
    from django.db import connection

    from django_ai_fields.jobs import tasks

    function = {"run_job": tasks.run_job, "run_drain": tasks.run_drain}[entry_point]
    try:
        return function(*args)
    finally:
        connection.close()


@pytest.fixture
def worker() -> Worker:
    return Worker()


def queued_count() -> int:
    return len(get_queue())
