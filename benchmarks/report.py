"""Printing the figures and writing results.json."""

from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path
from typing import Any

from .harness import Config, Figure

# The absolute numbers worth a glance in the table; everything is in results.json.
HEADLINES: dict[str, tuple[str, ...]] = {
    "load": ("ai_cpu_s", "plain_cpu_s", "wall_ratio"),
    "save_unchanged": (
        "ai_cpu_s",
        "plain_cpu_s",
        "wall_ratio",
        "jobs_created",
        "ai_queries_per_save",
        "plain_queries_per_save",
    ),
    "save_changed": (
        "new_jobs_extra_ms_per_save",
        "new_jobs_queries_per_save",
        "plain_queries_per_save",
        "coalesced_extra_ms_per_save",
    ),
    "worker_throughput": (
        "ai_offline_jobs_per_s",
        "rq_noop_jobs_per_s",
        "ai_openai_sdk_jobs_per_s",
    ),
    "queries_per_job": ("distinct_counts", "constant", "distinct_totals_with_transaction_control"),
    "backfill": ("wall_s", "serial_s", "provider_calls_per_s"),
}


def line(figure: Figure) -> str:
    ratio = "-" if figure.ratio is None else f"{figure.ratio:.3f}"
    met = {True: "met", False: "NOT MET", None: ""}[figure.met]
    goal = f"goal {figure.goal} {met}" if figure.goal else "(no goal)"
    numbers = ", ".join(
        f"{key}={figure.absolute[key]}"
        for key in HEADLINES.get(figure.key, ())
        if key in figure.absolute
    )
    return f"{figure.title:<52} {ratio:>8}  {goal:<20} {numbers}"


def breakdown(figure: Figure) -> str:
    """The statement kinds of one processed job, one per line."""
    kinds: dict[str, int] = figure.absolute.get("breakdown", {})
    rows = [f"    {count:>2}  {kind}" for kind, count in kinds.items()]
    return f"  queries of one job ({figure.absolute.get('breakdown_of')}):\n" + "\n".join(rows)


def environment() -> dict[str, Any]:
    from django.conf import settings
    from django.db import connection

    return {
        "ai_fields": {k: v for k, v in settings.AI_FIELDS.items() if k != "QUEUE"},
        "conn_max_age": connection.settings_dict.get("CONN_MAX_AGE", 0),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "database": connection.vendor,
        "redis": "real Redis (REDIS_URL)" if os.environ.get("REDIS_URL") else "fakeredis",
    }


def write(path: Path, cfg: Config, figures: list[Figure], seconds: float) -> None:
    payload = {
        "mode": "quick" if cfg.quick else "full",
        "repetitions": {"quick_measurements": cfg.reps, "slow_measurements": cfg.slow_reps},
        "generated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "run_seconds": round(seconds, 1),
        "environment": environment(),
        "figures": {figure.key: figure.as_dict() for figure in figures},
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
