"""The 300-job burst, run many times: does a run ever stall?

    REDIS_URL=redis://127.0.0.1:6379/8 DATABASE_URL=postgres://... \\
        .venv/bin/python benchmarks/stall.py [--runs 20] [--jobs 300] [--output FILE]

Each round, interleaved:

- ``ai``: ``--jobs`` saves of an ``Article`` (one AI field, each save its own
  transaction: drains requested, marks set and expiring as in production) while no
  worker runs; then one forking ``rqworker --burst`` starts and the clock runs from
  its start to the last job finished (the fake provider answers at once, real openai
  SDK over loopback).
- ``noop``: ``--jobs`` RQ no-op jobs, the same burst worker, the same clock.

Both include the worker's start (a Django process: about a second here), the same
for both. The ratio is each AI run over the median of the no-op runs
(``--noop-runs``, spread over the AI runs). With ``--mode live``
(``benchmarks/live.py``'s ``noop`` pair): one forking ``rqworker
--with-scheduler`` is started idle first, and the saves (or the no-op enqueues)
arrive while it runs, so drains, their marks and companions race the commits.

Prints jobs/s per run, min / median / max of each side and of the ratio ai /
noop, how long jobs waited from their save to their start, the longest gap
between two job starts, how many drains ran them, and PostgreSQL's autovacuum runs
on the app's tables meanwhile. A run below 0.8 of the median is a stall. Rates are
given to the last job's end and to the burst worker's exit (as the issue timed
them: a worker's 60-second stop shows only there). ``--worker-class ours,rq`` runs
``django_ai_fields.rq_worker.Worker`` and RQ's plain ``rq.Worker`` round by round.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if sys.path and Path(sys.path[0]).resolve() == HERE:
    sys.path.pop(0)
sys.path.insert(0, str(HERE.parent))

from benchmarks.harness import ROOT, run_database, setup_django  # noqa: E402
from benchmarks.live import POLL, provider, reset, save, statuses  # noqa: E402

WORKER_CLASSES = {
    "ours": "django_ai_fields.rq_worker.Worker",
    "rq": "rq.worker.Worker",  # RQ's own: its stop may wait 60 s (rq#1613)
}


def burst_worker(overrides: dict[str, Any], worker_class: str) -> subprocess.Popen[bytes]:
    from django.conf import settings

    from benchmarks.workers import worker_env

    command = [sys.executable, "-m", "django", "rqworker", settings.QUEUE_NAME, "--burst"]
    command += ["--worker-class", WORKER_CLASSES[worker_class]]
    return subprocess.Popen(
        command,
        env=worker_env(overrides),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def wait_for(done: Any, worker: subprocess.Popen[bytes], timeout: float = 300) -> float:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if done():
            return time.time()
        time.sleep(POLL)
    raise RuntimeError(f"not done in {timeout} s: {statuses()}")


def finish(worker: subprocess.Popen[bytes]) -> float:
    """Wait for the burst worker to exit; the time it did."""
    try:
        _, errors = worker.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        worker.kill()
        raise
    if worker.returncode:
        raise RuntimeError(f"the burst worker failed:\n{errors.decode()[-2000:]}")
    return time.time()


def ai_run(jobs: int, worker_class: str) -> dict[str, Any]:
    from rq.registry import FinishedJobRegistry

    from benchmarks.workers import get_queue
    from django_ai_fields.models import FINISHED_STATUSES, AIJob

    reset()
    with provider(0.0) as (clock, overrides):
        for i in range(jobs):
            save(f"row {i}")
        drains_queued = len(queued_drains())
        queue = get_queue()
        queue.connection.delete(FinishedJobRegistry(queue=queue).key)
        maintenance = maintenance_counts()
        started = time.time()
        worker = burst_worker(overrides, worker_class)
        done_at = wait_for(
            lambda: AIJob.objects.filter(status__in=FINISHED_STATUSES).count() >= jobs, worker
        )
        exited = finish(worker)
        maintenance = maintenance_counts() - maintenance
    assert len(clock.arrivals) == jobs, f"{len(clock.arrivals)} calls for {jobs} jobs"
    return {
        **job_waits(),
        **rates(jobs, started, done_at, exited),
        "drains_queued_before": drains_queued,
        "drains_run": drains_run(),
        # PostgreSQL's autovacuum and autoanalyze runs on the app's tables meanwhile
        "autovacuum_during_run": sorted(maintenance.elements()),
    }


def noop_run(jobs: int, worker_class: str) -> dict[str, Any]:
    from rq.registry import FinishedJobRegistry

    from benchmarks.workers import get_queue

    reset()
    queue = get_queue()
    registry = FinishedJobRegistry(queue=queue)
    queue.connection.delete(registry.key)  # entries of earlier runs expire meanwhile
    for _ in range(jobs):
        queue.enqueue("benchmarks.workers.noop")
    started = time.time()
    worker = burst_worker({}, worker_class)
    done_at = wait_for(lambda: registry.count >= jobs, worker)
    return rates(jobs, started, done_at, finish(worker))


def maintenance_counts() -> collections.Counter[str]:
    """Autovacuum and autoanalyze runs so far on the app's tables (PostgreSQL; else none)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return collections.Counter()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, autovacuum_count + autoanalyze_count FROM pg_stat_user_tables"
            " WHERE relname LIKE 'django_ai_fields_%%' OR relname LIKE 'testapp_%%'"
        )
        return collections.Counter(dict(cursor.fetchall()))


def rates(jobs: int, started: float, done_at: float, exited: float) -> dict[str, Any]:
    """Jobs/s to the last job's end, and to the burst worker's exit (as the issue timed it)."""
    return {
        "wall_s": round(done_at - started, 3),
        "jobs_per_s": round(jobs / (done_at - started), 1),
        "worker_exit_after_s": round(exited - done_at, 3),
        "jobs_per_s_to_exit": round(jobs / (exited - started), 1),
    }


def live_ai_run(jobs: int) -> dict[str, Any]:
    from benchmarks.live import throughput

    figures = throughput(jobs, 0.0, 1, "fork")
    return {**figures, **job_waits()}


def live_noop_run(jobs: int) -> dict[str, Any]:
    from benchmarks.live import noop_throughput

    return noop_throughput(jobs, "fork")


def job_waits() -> dict[str, Any]:
    """How long jobs waited from their save to their start: a stalled job shows here."""
    from django_ai_fields.models import AIJob

    times = list(AIJob.objects.values_list("created_at", "started_at", "rq_job_id"))
    waits = sorted((started - created).total_seconds() for created, started, _ in times)
    starts = sorted(started for _, started, _ in times)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
    return {
        "max_wait_s": round(waits[-1], 3),
        "jobs_waiting_over_1s": sum(1 for w in waits if w > 1.0),
        "longest_start_gap_s": round(max(gaps, default=0.0), 3),
        "drains_that_ran_jobs": len({task for _, _, task in times}),
    }


def queued_drains() -> list[str]:
    from benchmarks.workers import get_queue
    from django_ai_fields.dispatch.handover import DRAIN_PREFIX

    return [i for i in get_queue().job_ids if i.startswith(DRAIN_PREFIX)]


def drains_run() -> int:
    from rq.registry import FinishedJobRegistry

    from benchmarks.workers import get_queue
    from django_ai_fields.dispatch.handover import DRAIN_PREFIX

    registry = FinishedJobRegistry(queue=get_queue())
    return sum(1 for i in registry.get_job_ids() if i.startswith(DRAIN_PREFIX))


def spread(values: list[float]) -> dict[str, float]:
    return {
        "min": round(min(values), 2),
        "median": round(statistics.median(values), 2),
        "max": round(max(values), 2),
    }


def series(runs: list[dict[str, Any]], noops: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """One side's rates by ``key``, and its ratios to the median of its no-op runs."""
    noop_median = statistics.median(r[key] for r in noops)
    ratios = [round(r[key] / noop_median, 3) for r in runs]
    return {
        "ai_jobs_per_s": spread([r[key] for r in runs]),
        "noop_jobs_per_s": spread([r[key] for r in noops]),
        "ratio": spread(ratios),
        "stalled_runs": sum(1 for r in ratios if r < 0.8 * statistics.median(ratios)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--mode", choices=("queued", "live"), default="queued")
    parser.add_argument(
        "--noop-runs", type=int, default=None, help="no-op runs (default: --runs), every so often"
    )
    parser.add_argument(
        "--worker-class",
        default="ours",
        help="comma-separated, interleaved round by round: ours, rq (queued mode only)",
    )
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    if not os.environ.get("REDIS_URL"):
        sys.exit("benchmarks/stall.py needs REDIS_URL (a real Redis): see its docstring")
    classes = args.worker_class.split(",")
    if args.mode == "live" and classes != ["ours"]:
        sys.exit("--mode live runs live.py's workers: --worker-class ours only")
    setup_django()
    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in classes}
    noops: dict[str, list[dict[str, Any]]] = {c: [] for c in classes}
    noop_runs = args.runs if args.noop_runs is None else args.noop_runs
    noop_every = max(1, args.runs // max(1, noop_runs))
    with run_database():
        for n in range(args.runs):
            for worker_class in classes:
                ai = (
                    live_ai_run(args.jobs)
                    if args.mode == "live"
                    else ai_run(args.jobs, worker_class)
                )
                runs[worker_class].append(ai)
                print(n, worker_class, "ai", ai, flush=True)
                if n % noop_every == 0 and len(noops[worker_class]) < noop_runs:
                    noops[worker_class].append(
                        live_noop_run(args.jobs)
                        if args.mode == "live"
                        else noop_run(args.jobs, worker_class)
                    )
                    print(n, worker_class, "noop", noops[worker_class][-1], flush=True)
    summary: dict[str, Any] = {"mode": args.mode, "jobs": args.jobs, "runs": args.runs}
    for worker_class in classes:
        summary[worker_class] = {
            "to_last_job": series(runs[worker_class], noops[worker_class], "jobs_per_s"),
            "noop_runs": noops[worker_class],
            "all": runs[worker_class],
        }
        if args.mode == "queued":
            summary[worker_class]["to_exit"] = series(
                runs[worker_class], noops[worker_class], "jobs_per_s_to_exit"
            )
    print(json.dumps(summary_without_runs(summary), indent=2))
    output = args.output or HERE / f"stall-{args.mode}-results.json"
    output.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


def summary_without_runs(summary: dict[str, Any]) -> dict[str, Any]:
    return {
        key: {k: v for k, v in value.items() if k not in ("all", "noop_runs")}
        if isinstance(value, dict)
        else value
        for key, value in summary.items()
    }


if __name__ == "__main__":
    sys.exit(main())
