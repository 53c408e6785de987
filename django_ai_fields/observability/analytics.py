"""Aggregates over AIUsage and AIJob: usage and cost, latency, error rates.

Shared by the JSON API, the admin's totals and ``ai_usage``. Usage and cost are
read from the daily roll-up (rollup_reads.py) whenever the filter allows, so they
cost the same at ten million calls as at a thousand; latency percentiles read the
log, one ordered lookup per group, the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from django.db import models
from django.db.models import Count, Max

from ..models import AIJob, AIUsage, Status
from . import rollup_reads

GROUPS = ("tenant", "provider", "model", "day")
MICRO = Decimal("0.000001")
GATEWAY_UNIT = Decimal("1e-10")
PERCENTILES = (50, 95)


def usd(micro: int) -> Decimal:
    return (Decimal(micro) * MICRO).quantize(MICRO)


def summary(counters: dict[str, Any]) -> dict[str, Any]:
    """Calls, tokens and cost of one group, as the API and the admin show them."""
    return {
        "calls": counters["calls"],
        "input_tokens": counters["input_tokens"],
        "output_tokens": counters["output_tokens"],
        "cached_tokens": counters["cached_tokens"],
        "cost_usd": usd(counters["cost_micro"]),
        "tokens": counters["input_tokens"] + counters["output_tokens"],
    }


def totals(usage: models.QuerySet[AIUsage]) -> dict[str, Any]:
    """Calls, tokens and cost of a set of usage rows."""
    (counters,) = rollup_reads.grouped(usage, [])
    return totals_of(counters)


def totals_of(counters: dict[str, Any]) -> dict[str, Any]:
    """``totals()`` of roll-up counters already read (rollup_reads.grouped)."""
    gateway = None
    if counters["gateway_cost_calls"]:
        gateway = (Decimal(counters["gateway_cost_units"]) * GATEWAY_UNIT).quantize(GATEWAY_UNIT)
    return {
        **summary(counters),
        "reasoning_tokens": counters["reasoning_tokens"],
        "gateway_cost_usd": gateway,
        "unknown_cost_calls": counters["unknown_cost_calls"],
    }


def usage_by(usage: models.QuerySet[AIUsage], group_by: Sequence[str]) -> list[dict[str, Any]]:
    """Totals per group (any of tenant, provider, model, day), ordered by the groups."""
    unknown = set(group_by) - set(GROUPS)
    if unknown:
        raise ValueError(f"Cannot group by {', '.join(sorted(unknown))}.")
    result = []
    for row in rollup_reads.grouped(usage, group_by):
        group = {name: row[name] for name in group_by}
        if "day" in group:
            group["day"] = group["day"].isoformat()
        result.append({**group, **summary(row)})
    return result


def unknown_cost_models(usage: models.QuerySet[AIUsage]) -> dict[str, int]:
    """Calls of unknown cost (no price known) per model."""
    rows = rollup_reads.grouped(usage, ["model"], ["unknown_cost_calls"])
    return {row["model"]: row["unknown_cost_calls"] for row in rows if row["unknown_cost_calls"]}


def percentile(values: models.QuerySet[AIUsage], count: int, pct: int) -> int | None:
    """Nearest-rank percentile of duration_ms over ``count`` rows (one query)."""
    if count == 0:
        return None
    rank = max(1, math.ceil(pct / 100 * count))
    return values.order_by("duration_ms").values_list("duration_ms", flat=True)[rank - 1]


def latency(usage: models.QuerySet[AIUsage]) -> list[dict[str, Any]]:
    """Latency percentiles per provider and model, over answered calls (failures are
    counted by error_rates; result-cache hits made no call)."""
    calls = usage.filter(success=True, cache_hit=False).order_by()
    groups = calls.values("provider", "model").annotate(
        calls=Count("pk"), max_ms=Max("duration_ms")
    )
    result: list[dict[str, Any]] = []
    for group in groups.order_by("provider", "model"):
        subset = calls.filter(provider=group["provider"], model=group["model"])
        row: dict[str, Any] = dict(group)
        for pct in PERCENTILES:
            row[f"p{pct}_ms"] = percentile(subset, group["calls"], pct)
        result.append(row)
    return result


def error_rates(usage: models.QuerySet[AIUsage]) -> dict[str, Any]:
    """Share of failed provider calls, and failures per error code."""
    rows = rollup_reads.grouped(usage, ["success", "error_code"], ["calls"])
    calls = sum(row["calls"] for row in rows)
    by_code: dict[str, int] = {}
    for row in rows:
        if not row["success"]:
            code = row["error_code"] or "unknown"
            by_code[code] = by_code.get(code, 0) + row["calls"]
    failed = sum(by_code.values())
    return {
        "calls": calls,
        "failed": failed,
        "error_rate": round(failed / calls, 4) if calls else 0.0,
        "by_code": dict(sorted(by_code.items(), key=lambda item: (-item[1], item[0]))),
    }


def job_failures(jobs: models.QuerySet[AIJob]) -> dict[str, Any]:
    """Finished jobs, failed ones, and failures per error code."""
    finished = jobs.exclude(status__in=(Status.PENDING, Status.QUEUED, Status.RUNNING)).order_by()
    by_code = (
        finished.filter(status=Status.FAILED)
        .values("error_code")
        .annotate(n=Count("pk"))
        .order_by("-n", "error_code")
    )
    codes = {row["error_code"] or "unknown": row["n"] for row in by_code}
    count = finished.count()
    failed = sum(codes.values())
    return {
        "finished": count,
        "failed": failed,
        "failure_rate": round(failed / count, 4) if count else 0.0,
        "failed_by_code": codes,
    }
