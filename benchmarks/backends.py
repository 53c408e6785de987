"""The task backends side by side, with real workers as users run them (same machine,
same run, rounds interleaved so that a busy machine hits every backend alike).

    REDIS_URL=redis://127.0.0.1:6379/13 .venv/bin/python benchmarks/backends.py
        [--backends rq,celery-redis,celery-rabbitmq,django-db] [--saves 120]
        [--samples 20] [--reps 3] [--output FILE]

For each backend, one worker process (RQ's forking ``rqworker``; ``celery -A ...
worker -P prefork -c 1``; django-tasks-db's ``db_worker``, default 1 s poll) and the
provider answering at once (tests/fake_provider.py behind the real openai SDK):

- ``jobs_per_s``: N live saves (each its own transaction), first save to last job done;
- ``commit_to_call``: single saves at light load, the time from the commit to the
  provider receiving the call (p50, p95).

Celery's shared state is Redis (``REDIS_URL``); django-db's is the database cache
(no Redis). Each figure is the median of ``--reps`` rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if sys.path and Path(sys.path[0]).resolve() == HERE:
    sys.path.pop(0)
sys.path.insert(0, str(HERE.parent))

from benchmarks.harness import ROOT, run_database, setup_django  # noqa: E402

RABBITMQ_URL = os.environ.get("AI_FIELDS_BENCH_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672//")
BACKENDS = ("rq", "celery-redis", "celery-rabbitmq", "django-db")


def backend_settings(name: str) -> dict[str, Any]:
    """The AI_FIELDS of one backend (the run's queue, its shared state)."""
    from django.conf import settings

    if name == "rq":
        return {}
    if name.startswith("celery"):
        return {
            "TASK_BACKEND": "celery",
            "CELERY_APP": "benchmarks.celeryproj.sender",
            "CELERY_QUEUE": settings.QUEUE_NAME,
            "SHARED_STATE": "redis",
            "REDIS_URL": os.environ["REDIS_URL"],
        }
    return {"TASK_BACKEND": "django", "SHARED_STATE": "cache", "SHARED_STATE_CACHE": "shared"}


def broker_of(name: str) -> str:
    return RABBITMQ_URL if name == "celery-rabbitmq" else os.environ["REDIS_URL"]


class Worker:
    """One worker process of ``backend``, idle when started, SIGTERMed at the end."""

    def __init__(self, backend: str, overrides: dict[str, Any]) -> None:
        from django.conf import settings

        from benchmarks.workers import worker_env

        overrides = {**overrides, "CELERY_APP": None}  # a worker uses the project's app
        self.backend = backend
        self.errors = tempfile.TemporaryFile()  # noqa: SIM115  (closed by stop())
        env = worker_env(overrides)
        if backend == "rq":
            command = ["-m", "django", "rqworker", settings.QUEUE_NAME, "--with-scheduler"]
        elif backend.startswith("celery"):
            env["AI_FIELDS_BENCH_CELERY_BROKER"] = broker_of(backend)
            self.name = f"bench-{uuid.uuid4().hex[:8]}@localhost"
            command = ["-m", "celery", "-A", "benchmarks.celeryproj", "worker", "-P", "prefork"]
            command += ["-c", "1", "-Q", settings.QUEUE_NAME, "-n", self.name, "-l", "WARNING"]
        else:
            command = ["-m", "django", "db_worker", "--no-reload", "-v", "0"]
        self.process = subprocess.Popen(
            [sys.executable, *command], env=env, cwd=ROOT, stdout=self.errors, stderr=self.errors
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        from benchmarks.live import save, wait_until_done

        # One save run to the end: the worker has started and warmed up.
        save("warm-up 0")
        try:
            wait_until_done(1, timeout=120)
        except RuntimeError:
            self.errors.seek(0)
            raise RuntimeError(f"{self.backend} worker:\n{self.errors.read()[-3000:]!r}") from None

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.errors.close()


@contextmanager
def running(backend: str, clock_latency: float = 0.0) -> Iterator[Any]:
    """The fake provider, the backend's settings, and one warm idle worker."""
    from django.core.cache import caches
    from django.test import override_settings

    from benchmarks.live import provider, reset

    reset()
    caches["shared"].clear()  # the database cache's marks of the last run
    if backend.startswith("celery"):
        from celery import Celery

        from benchmarks import celeryproj

        celeryproj.sender = Celery("sender", broker=broker_of(backend), set_as_current=False)
    with provider(clock_latency) as (clock, overrides):
        overrides = {**overrides, **backend_settings(backend)}
        with override_settings(AI_FIELDS=overrides):
            worker = Worker(backend, overrides)
            try:
                yield clock
            finally:
                worker.stop()


def throughput(backend: str, saves: int) -> dict[str, Any]:
    from benchmarks.live import save_all, wait_until_done
    from django_ai_fields.models import AIJob, Status

    with running(backend):
        started = time.time()
        save_all([f"row {i}" for i in range(saves)], 1)
        finished = wait_until_done(saves + 1)  # the warm-up job included
    succeeded = AIJob.objects.filter(status=Status.SUCCEEDED).count()
    assert succeeded == saves + 1, f"{succeeded}/{saves + 1} succeeded"
    wall = finished - started
    return {"wall_s": round(wall, 3), "jobs_per_s": round(saves / wall, 1)}


def commit_to_call(backend: str, samples: int) -> dict[str, Any]:
    from benchmarks.live import percentiles, save, wait_until_done

    delays = []
    with running(backend) as clock:
        for i in range(samples):
            title = f"single {i}"
            committed = save(title)
            wait_until_done(i + 2)
            delays.append(clock.arrivals[title] - committed)
            time.sleep(0.05)
    return percentiles(delays)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--saves", type=int, default=120)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--output", type=Path, default=HERE / "backends-results.json")
    args = parser.parse_args()
    if not os.environ.get("REDIS_URL"):
        sys.exit("benchmarks/backends.py needs REDIS_URL (RQ's queue, Celery's broker)")
    setup_django()
    backends = args.backends.split(",")
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in backends}
    with run_database():
        from django.core.management import call_command

        call_command("createcachetable", verbosity=0)
        for round_number in range(args.reps):
            for name in backends:  # interleaved: drift hits every backend alike
                figures = throughput(name, args.saves) | {
                    "commit_to_call": commit_to_call(name, args.samples)
                }
                rounds[name].append(figures)
                print(round_number + 1, name, figures, flush=True)
    results = {
        "saves": args.saves,
        "samples": args.samples,
        "reps": args.reps,
        "machine": f"{os.cpu_count()} cores, shared",
        "backends": {name: summary(runs) for name, runs in rounds.items()},
    }
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results["backends"], indent=2))
    return 0


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the rounds, with every round's figures."""
    return {
        "jobs_per_s": statistics.median(r["jobs_per_s"] for r in runs),
        "commit_to_call_p50_ms": statistics.median(r["commit_to_call"]["p50_ms"] for r in runs),
        "commit_to_call_p95_ms": statistics.median(r["commit_to_call"]["p95_ms"] for r in runs),
        "rounds": runs,
    }


if __name__ == "__main__":
    sys.exit(main())
