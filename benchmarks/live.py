"""Live traffic drained by real ``rqworker`` processes, as users run them.

    REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python benchmarks/live.py [--quick]
        [--latency 0,200,1000] [--workers 1,2,4] [--worker-class fork,simple]
        [--only throughput,noop,latency,fairness] [--reps 3] [--output FILE]

Needs a real Redis (``REDIS_URL``): a forking worker on fakeredis loses results.
The database is a SQLite file of the run's own, or PostgreSQL with ``DATABASE_URL``.
The provider is tests/fake_provider.py on loopback behind the real openai SDK,
answering after the given latency. Figures, each the median of ``--reps`` runs:

- ``throughput``: N saves of an ``Article`` (one AI field each, each save its own
  transaction) with W worker processes already idle; jobs/s from the first save
  to the last job finished, and "x serial": N x latency over that wall time; the
  lag from the last save's commit to the last job's end, and commit to call of
  the saves under this load (p50, p95).
  Per-job CPU: the workers' CPU time (their work horses included) during the
  run, over N.
- ``noop``: RQ no-op jobs/s on the same worker class (the RQ ceiling), next to
  AI jobs/s at 0 ms latency with one worker.
- ``latency``: single saves at light load, one at a time, idle workers: time
  from the commit to the provider receiving the call (p50, p95).
- ``fairness``: while tenant "bulk" backfills ``--fair-rows`` rows
  (``ai_regenerate``), tenant "live" saves one row every 0.5 s; commit to call
  for those saves (p50, p95).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if sys.path and Path(sys.path[0]).resolve() == HERE:
    sys.path.pop(0)
sys.path.insert(0, str(HERE.parent))

from benchmarks.harness import ROOT, run_database, setup_django  # noqa: E402

WORKER_CLASSES = {"fork": "django_ai_fields.rq_worker.Worker", "simple": "rq.SimpleWorker"}
POLL = 0.02  # seconds between checks for finished jobs
# The titles the runs give their rows, found again in the prompt the provider receives.
TITLE = re.compile(r"\b(?:row|single|live|bulk) \d+")


def tenant_of(instance: Any) -> str:
    """TENANT_RESOLVER of the run: rows whose title starts with "bulk" belong to
    tenant "bulk", every other row to "live"."""
    return "bulk" if str(getattr(instance, "title", "")).startswith("bulk") else "live"


class CallClock:
    """The fake provider's responder: notes when each call arrived (by the row's
    title in the prompt), then answers after the run's latency."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.arrivals: dict[str, float] = {}
        self._lock = threading.Lock()

    def __call__(self, request: Any) -> str:
        arrived = time.time()
        found = TITLE.search(json.dumps(request.body) if request.body else "")
        marker = found.group(0) if found else ""
        with self._lock:
            self.arrivals.setdefault(marker, arrived)
        if self.latency:
            time.sleep(self.latency)
        return "A blurb."


@contextmanager
def provider(latency: float) -> Iterator[tuple[CallClock, dict[str, Any]]]:
    """The fake provider (real openai SDK over loopback) and the AI_FIELDS for it."""
    from django.conf import settings
    from django.test import override_settings

    from tests.fake_provider import running_fake_provider

    clock = CallClock(latency)
    with running_fake_provider() as server:
        server.reset()
        server.responder = clock
        overrides = {
            **settings.AI_FIELDS,
            "DEFAULT_PROVIDER": "openai",
            "TENANT_RESOLVER": "benchmarks.live.tenant_of",
            "PROVIDERS": {"openai": {"API_KEY": "sk-bench", "BASE_URL": server.openai_base_url}},
        }
        with override_settings(AI_FIELDS=overrides):
            yield clock, overrides


class Workers:
    """W ``manage.py rqworker`` processes on the run's queue, started idle and
    stopped with SIGTERM (a warm shutdown) at the end."""

    def __init__(self, count: int, worker_class: str, overrides: dict[str, Any]) -> None:
        from django.conf import settings

        from benchmarks.workers import worker_env

        self.errors = tempfile.TemporaryFile()  # noqa: SIM115  (closed by stop())
        env = worker_env(overrides)
        command = [sys.executable, "-m", "django", "rqworker", settings.QUEUE_NAME]
        command += ["--with-scheduler", "--worker-class", WORKER_CLASSES[worker_class]]
        self.processes = [
            subprocess.Popen(
                command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=self.errors
            )
            for _ in range(count)
        ]
        self._wait_registered(count)
        self.start_cpu = self.cpu_seconds()

    def _wait_registered(self, count: int) -> None:
        from rq import Worker

        from benchmarks.workers import get_queue

        queue = get_queue()
        deadline = time.time() + 60
        while len(Worker.all(queue=queue)) < count:
            if time.time() > deadline or any(p.poll() is not None for p in self.processes):
                self.errors.seek(0)
                raise RuntimeError(f"workers did not start:\n{self.errors.read()[-2000:]!r}")
            time.sleep(0.1)

    def cpu_seconds(self) -> float:
        """User + system CPU of the worker processes and their work horses: those
        reaped, and those still running (a drain lingering for more jobs)."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0
        for process in self.processes:
            total += sum(proc_cpu(process.pid)[:4])  # utime stime cutime cstime
            for child in children(process.pid):
                total += sum(proc_cpu(child)[:2])
        return total / ticks

    def stop(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        self.errors.close()


def proc_cpu(pid: int) -> list[int]:
    """utime, stime, cutime, cstime of a process, in clock ticks ([0] * 4 once gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return [0, 0, 0, 0]
    return [int(value) for value in stat.rsplit(")", 1)[1].split()[11:15]]


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def wait_until_done(expected: int, timeout: float = 900) -> float:
    """Wait until ``expected`` AI jobs have ended; return the time they had."""
    from django_ai_fields.models import FINISHED_STATUSES, AIJob

    deadline = time.time() + timeout
    while time.time() < deadline:
        if AIJob.objects.filter(status__in=FINISHED_STATUSES).count() >= expected:
            return time.time()
        time.sleep(POLL)
    raise RuntimeError(f"jobs not done in {timeout} s: {statuses()}")


def assert_all_answered(saves: int, clock: Any) -> None:
    """Every save's job succeeded, and the provider saw one call per save."""
    from django_ai_fields.models import AIJob, Status

    succeeded = AIJob.objects.filter(status=Status.SUCCEEDED).count()
    assert succeeded == saves, f"{succeeded}/{saves} succeeded: {statuses()}"
    assert len(clock.arrivals) == saves, f"{len(clock.arrivals)} calls for {saves} saves"


def statuses() -> dict[str, int]:
    from benchmarks import data

    return data.statuses()


def reset() -> None:
    from benchmarks.workers import get_queue
    from django_ai_fields.dispatch.handover import WAITING_DRAIN_KEY
    from django_ai_fields.models import AIJob, AIUsage
    from tests.testapp.models import Article

    for model in (AIUsage, AIJob, Article):
        model._base_manager.all().delete()
    queue = get_queue()
    queue.empty()
    # A drain the last run left waiting is gone with the queue: so is its mark.
    queue.connection.delete(WAITING_DRAIN_KEY)


def save(title: str) -> float:
    """One live save in its own transaction; returns the commit time."""
    from django.db import transaction

    from tests.testapp.models import Article

    committed: list[float] = []
    with transaction.atomic():
        transaction.on_commit(lambda: committed.append(time.time()))
        Article.objects.create(title=title, body="Body.")
    return committed[0]


def throughput(
    saves: int, latency: float, workers: int, worker_class: str, savers: int = 1
) -> dict[str, Any]:
    reset()
    with provider(latency) as (clock, overrides):
        pool = Workers(workers, worker_class, overrides)
        try:
            started = time.time()
            commits = save_all([f"row {i}" for i in range(saves)], savers)
            finished = wait_until_done(saves)
            cpu = pool.cpu_seconds() - pool.start_cpu
        finally:
            pool.stop()
    assert_all_answered(saves, clock)
    wall = finished - started
    last_save = max(commits.values())
    delays = [clock.arrivals[title] - committed for title, committed in commits.items()]
    under_load = percentiles(delays)
    return {
        "wall_s": round(wall, 3),
        "jobs_per_s": round(saves / wall, 1),
        "x_serial": round(saves * latency / wall, 2) if latency else None,
        "cpu_ms_per_job": round(cpu * 1000 / saves, 1),
        "saves_s": round(last_save - started, 3),
        # The last job's end after the last save's commit (the calls take `latency`).
        "lag_after_last_save_s": round(finished - last_save, 3),
        "commit_to_call_p50_ms": under_load["p50_ms"],
        "commit_to_call_p95_ms": under_load["p95_ms"],
    }


def save_all(titles: list[str], savers: int) -> dict[str, float]:
    """The saves, from ``savers`` threads at once (as several web processes would:
    one thread alone makes about 60 saves/s here, below what the workers take).
    Returns each save's commit time."""
    from django.db import connection

    commits: dict[str, float] = {}

    def save_share(share: list[str]) -> None:
        try:
            for title in share:
                commits[title] = save(title)
        finally:
            connection.close()

    if savers <= 1:
        for title in titles:
            commits[title] = save(title)
        return commits
    threads = [
        threading.Thread(target=save_share, args=(titles[n::savers],)) for n in range(savers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return commits


def noop_throughput(jobs: int, worker_class: str) -> dict[str, Any]:
    from rq.registry import FinishedJobRegistry

    from benchmarks.workers import get_queue

    reset()
    queue = get_queue()
    pool = Workers(1, worker_class, {})
    try:
        registry = FinishedJobRegistry(queue=queue)
        queue.connection.delete(registry.key)  # earlier runs' entries expire meanwhile
        before = registry.count
        started = time.time()
        for _ in range(jobs):
            queue.enqueue("benchmarks.workers.noop")
        while registry.count - before < jobs:
            time.sleep(POLL)
        wall = time.time() - started
    finally:
        pool.stop()
    return {"wall_s": round(wall, 3), "jobs_per_s": round(jobs / wall, 1)}


def commit_to_call(samples: int, worker_class: str) -> dict[str, Any]:
    reset()
    with provider(0.0) as (clock, overrides):
        pool = Workers(1, worker_class, overrides)
        try:
            delays = []
            for i in range(samples):
                title = f"single {i}"
                committed = save(title)
                wait_until_done(i + 1)
                if title not in clock.arrivals:
                    raise RuntimeError(
                        f"no call for {title!r}: {statuses()} {list(clock.arrivals)}"
                    )
                delays.append(clock.arrivals[title] - committed)
                time.sleep(0.05)  # the worker is idle again when the next save commits
        finally:
            pool.stop()
    return percentiles(delays)


def fairness(rows: int, live_saves: int, latency: float, worker_class: str) -> dict[str, Any]:
    from django.core.management import call_command

    from tests.testapp.models import Article

    reset()
    Article.objects.bulk_create(
        [Article(title=f"bulk {i}", body="Body.") for i in range(rows)], batch_size=500
    )
    with provider(latency) as (clock, overrides):
        pool = Workers(2, worker_class, overrides)
        try:
            call_command("ai_regenerate", "testapp.Article", stdout=io.StringIO())
            time.sleep(1.0)  # the backfill is under way
            delays = []
            for i in range(live_saves):
                title = f"live {i}"
                committed = save(title)
                deadline = time.time() + 60
                while title not in clock.arrivals and time.time() < deadline:
                    time.sleep(POLL)
                delays.append(clock.arrivals.get(title, deadline) - committed)
                time.sleep(0.5)
            wait_until_done(rows + live_saves)
        finally:
            pool.stop()
    return percentiles(delays) | {"backfill_rows": rows, "latency_ms": latency * 1000}


def percentiles(values: list[float]) -> dict[str, Any]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "samples": len(values),
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p95_ms": round(p95 * 1000, 1),
    }


def median_of(reps: int, run: Any, *args: Any) -> dict[str, Any]:
    """Run ``reps`` times; the run with the median wall time (or p50), with all walls."""
    results = [run(*args) for _ in range(reps)]
    key = "wall_s" if "wall_s" in results[0] else "p50_ms"
    results.sort(key=lambda r: r[key])
    chosen = dict(results[len(results) // 2])
    chosen["runs"] = [r[key] for r in results]
    return chosen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--latency", default="0,200,1000", help="ms, comma-separated")
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--worker-class", default="fork,simple")
    parser.add_argument("--only", default="throughput,noop,latency,fairness")
    parser.add_argument("--saves", type=int, default=None)
    parser.add_argument("--savers", type=int, default=1, help="threads making the saves")
    parser.add_argument("--fair-rows", type=int, default=None)
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--output", type=Path, default=HERE / "live-results.json")
    args = parser.parse_args()
    if not os.environ.get("REDIS_URL"):
        sys.exit("benchmarks/live.py needs REDIS_URL (a real Redis): see its docstring")
    setup_django()
    saves = args.saves or (60 if args.quick else 120)
    reps = args.reps or (1 if args.quick else 3)
    fair_rows = args.fair_rows or (200 if args.quick else 1000)
    latencies = [int(v) / 1000 for v in args.latency.split(",")]
    counts = [int(v) for v in args.workers.split(",")]
    classes = args.worker_class.split(",")
    only = set(args.only.split(","))
    results: dict[str, Any] = {
        "saves": saves,
        "savers": args.savers,
        "reps": reps,
        "database": db_label(),
    }
    with run_database():
        for worker_class in classes:
            out = results.setdefault(worker_class, {})
            if "throughput" in only:
                for latency in latencies:
                    for count in counts:
                        key = f"{int(latency * 1000)}ms x {count} workers"
                        out[key] = median_of(
                            reps, throughput, saves, latency, count, worker_class, args.savers
                        )
                        print(worker_class, key, out[key], flush=True)
            if "noop" in only:
                out["rq_noop_1_worker"] = median_of(reps, noop_throughput, 300, worker_class)
                out["ai_0ms_1_worker"] = median_of(reps, throughput, 300, 0.0, 1, worker_class)
                print(worker_class, "noop", out["rq_noop_1_worker"], "ai", out["ai_0ms_1_worker"])
            if "latency" in only:
                out["commit_to_call"] = commit_to_call(20, worker_class)
                print(worker_class, "commit_to_call", out["commit_to_call"], flush=True)
            if "fairness" in only:
                out["fairness"] = fairness(fair_rows, 10, 0.2, worker_class)
                print(worker_class, "fairness", out["fairness"], flush=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {args.output}")
    return 0


def db_label() -> str:
    return "postgresql" if os.environ.get("DATABASE_URL") else "sqlite"


if __name__ == "__main__":
    sys.exit(main())
