"""The benchmarks, in the order run.py runs them."""

from __future__ import annotations

from collections.abc import Callable

from .backfill import backfill
from .harness import Config, Figure
from .jobs import queries_per_job, throughput
from .rows import load, save_changed, save_unchanged
from .values import stale

SCENARIOS: dict[str, Callable[[Config], Figure]] = {
    "load": load,
    "save_unchanged": save_unchanged,
    "save_changed": save_changed,
    "worker_throughput": throughput,
    "queries_per_job": queries_per_job,
    "backfill": backfill,
    "stale": stale,
}
