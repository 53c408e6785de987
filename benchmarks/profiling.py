"""Profile one hot path with cProfile and print the top functions.

.venv/bin/python benchmarks/profiling.py load|save_unchanged|save_changed|job|job_sdk
    [--rows N] [--sort cumulative|tottime] [--top 30] [--dump FILE.prof]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
if sys.path and Path(sys.path[0]).resolve() == HERE:
    sys.path.pop(0)
sys.path.insert(0, str(HERE.parent))

from benchmarks.harness import run_database, setup_django  # noqa: E402


def prepare(target: str, rows: int) -> Callable[[], object]:
    """Set the data up (not profiled) and return the call to profile."""
    from django.db import transaction

    from benchmarks import data, workers
    from benchmarks import rows as row_benchmarks
    from benchmarks.fake_llm import fake_server, openai_at
    from tests.testapp.models import Lead

    data.reset()
    if target == "load":
        data.fill(Lead, rows)
        return lambda: list(Lead.objects.all())
    if target in ("save_unchanged", "save_changed"):
        data.fill(Lead, rows)
        objs = list(Lead.objects.all())
        if target == "save_changed":
            row_benchmarks._edit(objs, 1)
        return lambda: row_benchmarks._save_all(objs)
    if target in ("job", "job_sdk"):
        with transaction.atomic():
            for i in range(max(1, rows // 3)):
                Lead.objects.create(**data.lead_values(i))
        if target == "job":
            return workers.drain

        def over_sdk() -> None:
            with fake_server() as server, openai_at(server):
                workers.drain()

        return over_sdk
    raise SystemExit(f"unknown target {target!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target")
    parser.add_argument("--rows", type=int, default=2_000)
    parser.add_argument("--sort", default="cumulative")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--dump", type=Path, default=None)
    args = parser.parse_args()
    setup_django()
    with run_database():
        call = prepare(args.target, args.rows)
        profiler = cProfile.Profile()
        profiler.runcall(call)
    if args.dump:
        profiler.dump_stats(args.dump)
    pstats.Stats(profiler).strip_dirs().sort_stats(args.sort).print_stats(args.top)


if __name__ == "__main__":
    main()
