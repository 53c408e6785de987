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
between two job starts, and how many drains ran them. A run below 0.8 of the
median is a stall.
"""

from __future__ import annotations

import argparse
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


def burst_worker(overrides: dict[str, Any]) -> subprocess.Popen[bytes]:
    from django.conf import settings

    from benchmarks.workers import worker_env

    command = [sys.executable, "-m", "django", "rqworker", settings.QUEUE_NAME, "--burst"]
    command += ["--worker-class", "django_ai_fields.rq_worker.Worker"]
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


def ai_run(jobs: int) -> dict[str, Any]:
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
        started = time.time()
        worker = burst_worker(overrides)
        done_at = wait_for(
            lambda: AIJob.objects.filter(status__in=FINISHED_STATUSES).count() >= jobs, worker
        )
        exited = finish(worker)
    assert len(clock.arrivals) == jobs, f"{len(clock.arrivals)} calls for {jobs} jobs"
    return {
        **job_waits(),
        "wall_s": round(done_at - started, 3),
        "jobs_per_s": round(jobs / (done_at - started), 1),
        "worker_exit_after_s": round(exited - done_at, 3),
        "drains_queued_before": drains_queued,
        "drains_run": drains_run(),
    }


def noop_run(jobs: int) -> dict[str, Any]:
    from rq.registry import FinishedJobRegistry

    from benchmarks.workers import get_queue

    reset()
    queue = get_queue()
    registry = FinishedJobRegistry(queue=queue)
    queue.connection.delete(registry.key)  # entries of earlier runs expire meanwhile
    for _ in range(jobs):
        queue.enqueue("benchmarks.workers.noop")
    started = time.time()
    worker = burst_worker({})
    done_at = wait_for(lambda: registry.count >= jobs, worker)
    finish(worker)
    return {
        "wall_s": round(done_at - started, 3),
        "jobs_per_s": round(jobs / (done_at - started), 1),
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--mode", choices=("queued", "live"), default="queued")
    parser.add_argument(
        "--noop-runs", type=int, default=None, help="no-op runs (default: --runs), every so often"
    )
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    if not os.environ.get("REDIS_URL"):
        sys.exit("benchmarks/stall.py needs REDIS_URL (a real Redis): see its docstring")
    setup_django()
    runs: list[dict[str, Any]] = []
    with run_database():
        noop_runs = args.runs if args.noop_runs is None else args.noop_runs
        noop_every = max(1, args.runs // max(1, noop_runs))
        noops: list[dict[str, Any]] = []
        for n in range(args.runs):
            live = args.mode == "live"
            ai = live_ai_run(args.jobs) if live else ai_run(args.jobs)
            if n % noop_every == 0 and len(noops) < noop_runs:
                noops.append(live_noop_run(args.jobs) if live else noop_run(args.jobs))
                print(n, "noop", noops[-1], flush=True)
            runs.append({"ai": ai})
            print(n, "ai", ai, flush=True)
    noop_median = statistics.median(r["jobs_per_s"] for r in noops)
    for run in runs:
        run["ratio"] = round(run["ai"]["jobs_per_s"] / noop_median, 3)
    ratios = [r["ratio"] for r in runs]
    summary = {
        "mode": args.mode,
        "jobs": args.jobs,
        "runs": len(runs),
        "ai_jobs_per_s": spread([r["ai"]["jobs_per_s"] for r in runs]),
        "noop_jobs_per_s": spread([r["jobs_per_s"] for r in noops]),
        "noop_runs": noops,
        "ratio": spread(ratios),
        "stalled_runs": sum(1 for r in ratios if r < 0.8 * statistics.median(ratios)),
        "all": runs,
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "all"}, indent=2))
    output = args.output or HERE / f"stall-{args.mode}-results.json"
    output.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
