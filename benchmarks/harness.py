"""Plumbing shared by the scenarios: Django set-up, the run's database, timing."""

from __future__ import annotations

import gc
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def setup_django() -> None:
    """Select the benchmark settings (run from the repository root or anywhere)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"
    import django

    django.setup()


@contextmanager
def run_database() -> Iterator[None]:
    """A database of this run's own, created with the migrations and dropped after."""
    from django.db import connection

    creation = connection.creation
    old_name = connection.settings_dict["NAME"]
    creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        yield
    finally:
        creation.destroy_test_db(old_name, verbosity=0)


@dataclass
class Config:
    """Sizes of one run; --quick scales the slow ones down."""

    quick: bool
    # Repetitions of the quick measurements (loads, saves); the median is reported.
    reps: int
    # Repetitions of the slow ones: saves that request jobs (a commit per enqueued
    # job), worker throughput.
    slow_reps: int
    load_rows: int = 20_000
    saves: int = 2_000
    changed_saves: int = 2_000
    throughput_jobs: int = 300
    # Jobs measured per case for queries per job (None: all of them).
    query_sample: int | None = None
    backfill_rows: int = 1_000
    backfill_delay: float = 0.2
    backfill_workers: int = 2
    # One backfill of 1,000 rows takes minutes while each job makes one call.
    backfill_reps: int = 1
    backfill_args: list[str] = field(default_factory=list)
    # Rows with generated values that api.stale() reads (benchmarks/values.py).
    stale_rows: int = 100_000

    @classmethod
    def make(cls, quick: bool, reps: int | None, backfill_reps: int | None) -> Config:
        if quick:
            config = cls(
                quick,
                reps=reps or 5,
                slow_reps=reps or 3,
                saves=1_000,
                changed_saves=100,
                throughput_jobs=45,
                query_sample=12,
                backfill_rows=60,
                stale_rows=10_000,
            )
        else:
            config = cls(quick, reps=reps or 9, slow_reps=reps or 3)
        config.backfill_reps = backfill_reps or config.backfill_reps
        return config


@dataclass(frozen=True)
class Timing:
    """Wall time and this process's CPU time of one call, in seconds."""

    wall: float
    cpu: float


def timed(fn: Callable[[], Any]) -> Timing:
    """Time one call; garbage from earlier work is collected first."""
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return Timing(time.perf_counter() - wall, time.process_time() - cpu)


def seconds(fn: Callable[[], Any]) -> float:
    return timed(fn).wall


class QueryLog:
    """The SQL run on the default connection inside ``with QueryLog() as log:``.

    Unlike CaptureQueriesContext it has no 9,000-statement cap and does not
    slow the statements down with the debug cursor."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def __call__(self, execute: Callable[..., Any], sql: str, *args: Any) -> Any:
        self.statements.append(sql)
        return execute(sql, *args)

    def __enter__(self) -> QueryLog:
        from django.db import connection

        self._wrapper = connection.execute_wrapper(self)
        self._wrapper.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._wrapper.__exit__(*exc_info)

    def __len__(self) -> int:
        return len(self.statements)


def median(values: list[float]) -> float:
    return statistics.median(values)


def interleaved(reps: int, cases: dict[str, Callable[[], Timing]]) -> dict[str, list[Timing]]:
    """Run each case once per repetition, alternating, so drift hits them alike."""
    samples: dict[str, list[Timing]] = {name: [] for name in cases}
    for _ in range(reps):
        for name, case in cases.items():
            samples[name].append(case())
    return samples


def medians(samples: dict[str, list[Timing]]) -> dict[str, Timing]:
    return {
        name: Timing(median([t.wall for t in values]), median([t.cpu for t in values]))
        for name, values in samples.items()
    }


def sample_table(samples: dict[str, list[Timing]]) -> dict[str, dict[str, list[float]]]:
    """Every repetition's figures, for results.json."""
    return {
        name: {
            "wall_s": [round(t.wall, 4) for t in values],
            "cpu_s": [round(t.cpu, 4) for t in values],
        }
        for name, values in samples.items()
    }


@dataclass
class Figure:
    """One benchmark's outcome: absolute numbers, the ratio to its baseline, the goal."""

    key: str
    title: str
    ratio: float | None
    ratio_label: str
    goal: str = ""
    met: bool | None = None
    absolute: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "ratio": None if self.ratio is None else round(self.ratio, 3),
            "ratio_label": self.ratio_label,
            "goal": self.goal,
            "met": self.met,
            "absolute": self.absolute,
            "notes": self.notes,
        }


def goal_met(value: float | None, goal: str) -> bool | None:
    """Check ``value`` against a goal written as '<= 1.2' or '>= 20'."""
    if value is None or not goal:
        return None
    op, _, limit = goal.partition(" ")
    return value <= float(limit) if op == "<=" else value >= float(limit)
