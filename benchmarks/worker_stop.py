"""How long an RQ worker takes to stop: a plain ``rq.Worker`` against
``django_ai_fields.rq_worker.Worker``, interleaved, on a real Redis.

    REDIS_URL=redis://127.0.0.1:6379/9 .venv/bin/python benchmarks/worker_stop.py [--runs 20]

Each run starts ``rq worker --burst`` on an empty queue of its own (rq's command
line, no Django: the stop is RQ's) and times it from start to exit; with ``--load``
each run shares the 2 cores with that many busy-looping processes, as a deploy's
other processes would. Prints, per class, the exits min / median / max and how many
took over 30 s (the listener thread's 60 s wait: docs/performance.md).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

CLASSES = {"plain": "rq.Worker", "ours": "django_ai_fields.rq_worker.Worker"}
SLOW = 30.0  # seconds: an exit slower than this waited for the listener thread
ROOT = Path(__file__).resolve().parent.parent
RQ = str(Path(sys.executable).parent / "rq")


def one_stop(worker_class: str, redis_url: str) -> float:
    queue = f"ai-fields-stop-{uuid.uuid4().hex[:8]}"
    command = [RQ, "worker", "--burst", "-u", redis_url, "-w", worker_class, queue]
    started = time.monotonic()
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True, timeout=180)
    return time.monotonic() - started


def busy_loop() -> None:
    while True:
        pass


def summary(name: str, seconds: list[float]) -> str:
    slow = sum(s > SLOW for s in seconds)
    figures = f"{min(seconds):.2f} / {statistics.median(seconds):.2f} / {max(seconds):.2f} s"
    slow_part = f"over {SLOW:.0f} s: {slow} of {len(seconds)}"
    return f"{name:6} ({CLASSES[name]}): exit min / median / max {figures}; {slow_part}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--load", type=int, default=0, help="busy processes beside each run")
    args = parser.parse_args()
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        sys.exit("REDIS_URL must point at a real Redis (a database number of your own)")
    loads = [multiprocessing.Process(target=busy_loop, daemon=True) for _ in range(args.load)]
    for process in loads:
        process.start()
    results: dict[str, list[float]] = {name: [] for name in CLASSES}
    try:
        for run in range(args.runs):
            for name, worker_class in CLASSES.items():
                results[name].append(one_stop(worker_class, redis_url))
            print(f"run {run}: " + ", ".join(f"{n} {s[-1]:.2f} s" for n, s in results.items()))
    finally:
        for process in loads:
            process.terminate()
    for name, seconds in results.items():
        print(summary(name, seconds))


if __name__ == "__main__":
    main()
