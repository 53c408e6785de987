"""Draining the run's queue: in-process SimpleWorkers (fakeredis or a real Redis),
threads of them, or real ``rqworker`` processes when REDIS_URL is set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from typing import Any

from rq import SimpleWorker
from rq.timeouts import TimerDeathPenalty

from .harness import ROOT


def noop() -> None:
    """The RQ baseline job: does nothing."""


def get_queue() -> Any:
    from django_ai_fields.queues import get_queue as ai_queue

    return ai_queue()


def drain() -> None:
    """Process every job on the queue in this process, then return."""
    queue = get_queue()
    SimpleWorker([queue], connection=queue.connection).work(burst=True)


class ThreadWorker(SimpleWorker):
    """A SimpleWorker that can run off the main thread: no signal handlers, and job
    timeouts by timer instead of SIGALRM."""

    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self) -> None:
        pass


def drain_with(workers: int, settings_overrides: dict[str, Any]) -> None:
    """Drain with several workers at once: real ``rqworker`` processes on a real
    Redis; on fakeredis (one process only) SimpleWorkers in threads."""
    if os.environ.get("REDIS_URL"):
        with tempfile.TemporaryFile() as errors:
            processes = [_start_worker_process(settings_overrides, errors) for _ in range(workers)]
            if any([process.wait(timeout=3600) for process in processes]):
                errors.seek(0)
                raise RuntimeError(f"an rqworker failed:\n{errors.read().decode()[-2000:]}")
        return
    threads = [threading.Thread(target=_thread_drain) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _thread_drain() -> None:
    from django.db import connection

    queue = get_queue()
    try:
        ThreadWorker([queue], connection=queue.connection).work(burst=True)
    finally:
        connection.close()


def _start_worker_process(
    settings_overrides: dict[str, Any], errors: Any
) -> subprocess.Popen[bytes]:
    from django.conf import settings

    command = [sys.executable, "-m", "django", "rqworker", settings.QUEUE_NAME, "--burst"]
    command += ["--worker-class", "rq.SimpleWorker"]
    return subprocess.Popen(
        command,
        env=worker_env(settings_overrides),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=errors,
    )


def worker_env(settings_overrides: dict[str, Any]) -> dict[str, str]:
    """The environment of an ``rqworker`` process of this run: its settings, its
    database and queue, the run's AI_FIELDS."""
    from django.conf import settings

    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="benchmarks.settings",
        AI_FIELDS_BENCH_WORKER="1",
        AI_FIELDS_BENCH_RUN=settings.RUN_ID,
        AI_FIELDS_BENCH_OVERRIDES=json.dumps(settings_overrides),
        PYTHONPATH=str(ROOT),
    )
    return env
