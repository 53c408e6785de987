"""Aggregates over AIUsage and AIJob: usage and cost, latency, error rates.

Shared by the JSON API, the admin's totals and ``ai_usage``. Everything is
computed in the database; percentiles use one ordered lookup per group, so
they work the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from django.db import models
from django.db.models import Count, Max, Q, Sum
from django.db.models.functions import TruncDate

from ..models import AIJob, AIUsage, Status

GROUPS = ("tenant", "provider", "model", "day")
MICRO = Decimal("0.000001")
PERCENTILES = (50, 95)

TOTALS = {
    "calls": Count("pk"),
    "input_tokens": Sum("input_tokens", default=0),
    "output_tokens": Sum("output_tokens", default=0),
    "cached_tokens": Sum("cached_tokens", default=0),
    "cost_usd": Sum("cost_usd", default=Decimal(0)),
}


def totals(usage: models.QuerySet[AIUsage]) -> dict[str, Any]:
    """Calls, tokens and cost of a set of usage rows."""
    # Counted before the "cost_usd" total shadows the column's name.
    unknown = usage.order_by().aggregate(n=Count("pk", filter=Q(cost_usd__isnull=True)))["n"]
    result = usage.order_by().aggregate(
        **TOTALS,
        reasoning_tokens=Sum("reasoning_tokens", default=0),
        gateway_cost_usd=Sum("gateway_cost_usd"),
    )
    result["unknown_cost_calls"] = unknown
    # SQLite sums decimals as floats: back to micro-dollars.
    result["cost_usd"] = Decimal(result["cost_usd"]).quantize(MICRO)
    result["tokens"] = result["input_tokens"] + result["output_tokens"]
    return result


def usage_by(usage: models.QuerySet[AIUsage], group_by: Sequence[str]) -> list[dict[str, Any]]:
    """Totals per group (any of tenant, provider, model, day), ordered by the groups."""
    unknown = set(group_by) - set(GROUPS)
    if unknown:
        raise ValueError(f"Cannot group by {', '.join(sorted(unknown))}.")
    rows = usage.order_by()
    if "day" in group_by:
        rows = rows.annotate(day=TruncDate("created_at"))
    rows = rows.values(*group_by).annotate(**TOTALS).order_by(*group_by)
    result = []
    for row in rows:
        row["tokens"] = row["input_tokens"] + row["output_tokens"]
        if "day" in row:
            row["day"] = row["day"].isoformat()
        result.append(row)
    return result


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
    summary = usage.order_by().aggregate(
        calls=Count("pk"), failed=Count("pk", filter=Q(success=False))
    )
    by_code = (
        usage.filter(success=False)
        .order_by()
        .values("error_code")
        .annotate(n=Count("pk"))
        .order_by("-n", "error_code")
    )
    calls = summary["calls"]
    return {
        **summary,
        "error_rate": round(summary["failed"] / calls, 4) if calls else 0.0,
        "by_code": {row["error_code"] or "unknown": row["n"] for row in by_code},
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
