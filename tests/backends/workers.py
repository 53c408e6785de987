"""Real workers for tests/backends, started as users start them: ``celery -A proj
worker`` (prefork) and django-tasks-db's ``manage.py db_worker``, each in its own
process group, with the test's settings, database and fake provider."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from django.conf import settings

from tests.faults.harness import children

ROOT = Path(__file__).resolve().parents[2]
# A Redis database of these tests' own, one per pytest-xdist process (11, 12, ...).
_XDIST = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
REDIS_URL = os.environ.get(
    "AI_FIELDS_TEST_CELERY_REDIS", f"redis://127.0.0.1:6379/{11 + int(_XDIST or 0)}"
)
RABBITMQ_URL = os.environ.get("AI_FIELDS_TEST_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672//")


def port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), 0.5):
        return True
    return False


def worker_env(**extra: str) -> dict[str, str]:
    """The environment tests/conftest.py gives rqworker subprocesses, for these workers."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="tests.backends.worker_settings",
        AI_FIELDS_WORKER_PROCESS="1",
        AI_FIELDS_TEST_OVERRIDES=json.dumps(settings.AI_FIELDS),
        AI_FIELDS_TEST_SQLITE=str(settings.DATABASES["default"]["NAME"]),
        AI_FIELDS_TEST_DB_NAME=str(settings.DATABASES["default"]["NAME"]),
        AI_FIELDS_TEST_REDIS_DB=str(getattr(settings, "REDIS_TEST_DB", 0)),
        AI_FIELDS_TEST_MEDIA_ROOT=str(settings.MEDIA_ROOT),
        PYTHONPATH=str(ROOT),
        **extra,
    )
    return env


class WorkerProcess:
    """One worker process (group), its output kept for a failing test's message."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.command, self.env = command, env
        self.log = tempfile.NamedTemporaryFile(prefix="ai-fields-worker-", suffix=".log")  # noqa: SIM115
        self.process = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=self.log, stderr=self.log, start_new_session=True
        )

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        """SIGKILL the whole group (the worker and its children), as the OOM killer might."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()
        self.log.close()


class CeleryWorker(WorkerProcess):
    """``celery -A tests.backends.celeryproj worker -P prefork`` on ``queue``."""

    def __init__(self, broker: str, queue: str, concurrency: int = 2) -> None:
        self.name = f"ai-test-{uuid.uuid4().hex[:8]}@localhost"
        command = [sys.executable, "-m", "celery", "-A", "tests.backends.celeryproj", "worker"]
        command += ["-P", "prefork", "-c", str(concurrency), "-Q", queue, "-n", self.name]
        command += ["-l", "WARNING"]
        env = worker_env(AI_FIELDS_TEST_CELERY_BROKER=broker, AI_FIELDS_TEST_CELERY_QUEUE=queue)
        super().__init__(command, env)

    def wait_ready(self, app: Any, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the Celery worker exited:\n{self.output()}")
            if app.control.ping(destination=[self.name], timeout=0.5):
                return
        raise RuntimeError(f"the Celery worker did not answer a ping:\n{self.output()}")

    def pool_processes(self) -> list[int]:
        return children(self.process.pid)

    def kill_pool_process(self, pid: int) -> None:
        """SIGKILL one prefork child (the one making a call): Celery starts another."""
        os.kill(pid, signal.SIGKILL)


class DbWorker(WorkerProcess):
    """django-tasks-db's ``manage.py db_worker``, with no Redis configured at all."""

    def __init__(self) -> None:
        command = [sys.executable, "-m", "django", "db_worker", "--interval", "0.2"]
        command += ["--no-startup-delay", "--no-reload", "-v", "0"]
        super().__init__(command, worker_env(AI_FIELDS_TEST_NO_REDIS="1"))

    @staticmethod
    def task_rows() -> list[str]:
        """django-tasks-db's task rows, for a failing test's message."""
        from django_tasks_db.models import DBTaskResult

        columns = ("status", "args_kwargs", "run_after", "started_at", "finished_at")
        return [repr(row) for row in DBTaskResult.objects.order_by("enqueued_at").values(*columns)]

    def wait_ready(self) -> None:
        """db_worker keeps no registry: its tasks wait in the table until it looks."""
        if self.process.poll() is not None:
            raise RuntimeError(f"db_worker exited:\n{self.output()}")
