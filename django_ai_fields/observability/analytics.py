"""Aggregates over AIUsage and AIJob: usage and cost, latency, error rates.

Shared by the JSON API, the admin's totals and ``ai_usage``. Usage and cost are
read from the daily roll-up (rollup_reads.py) whenever the filter allows, so they
cost the same at ten million calls as at a thousand; so are latency percentiles,
approximated from the roll-up's duration histogram (within 10%).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from django.db import models

from ..models import LATENCY_BOUNDS, LATENCY_COLUMNS, AIJob, AIUsage, Status
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


def approximate_percentile(histogram: Sequence[int], pct: int, max_ms: int) -> int | None:
    """The nearest-rank percentile of the durations counted in ``histogram`` (calls per
    LATENCY_BOUNDS bucket): the middle of the bucket holding that rank, at most
    ``max_ms``. Within 10% of the exact value from 16 ms to 2**20 ms (and within 8 ms
    below 16 ms): every bucket there is at most 19% wider than its lower bound."""
    total = sum(histogram)
    if not total:
        return None
    rank = max(1, math.ceil(pct / 100 * total))
    index, seen = 0, histogram[0]
    while seen < rank:
        index += 1
        seen += histogram[index]
    lower = LATENCY_BOUNDS[index]
    upper = LATENCY_BOUNDS[index + 1] - 1 if index + 1 < len(LATENCY_BOUNDS) else max_ms
    return min(round((lower + max(upper, lower)) / 2), max(max_ms, lower))


def latency(usage: models.QuerySet[AIUsage]) -> list[dict[str, Any]]:
    """Latency percentiles per provider and model, over answered calls (failures are
    counted by error_rates; result-cache hits made no call), from the duration
    histogram of the daily roll-up: approximate (approximate_percentile), and the same
    cost at ten million calls as at a thousand. ``max_ms`` is exact."""
    answered = usage.filter(success=True, cache_hit=False)
    counters = ("calls", "duration_max_ms", *LATENCY_COLUMNS)
    result: list[dict[str, Any]] = []
    for group in rollup_reads.grouped(answered, ["provider", "model"], counters):
        histogram = [group[column] for column in LATENCY_COLUMNS]
        max_ms = group["duration_max_ms"]
        row: dict[str, Any] = {
            "provider": group["provider"],
            "model": group["model"],
            "calls": group["calls"],
            "max_ms": max_ms,
        }
        for pct in PERCENTILES:
            row[f"p{pct}_ms"] = approximate_percentile(histogram, pct, max_ms)
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
    """Finished jobs, failed ones, and failures per error code (from the daily job
    tally when the filter allows: rollup_reads.finished_jobs)."""
    count, codes = 0, dict[str, int]()
    for row in rollup_reads.finished_jobs(jobs):
        count += row["jobs"]
        if row["status"] == Status.FAILED:
            code = row["error_code"] or "unknown"
            codes[code] = codes.get(code, 0) + row["jobs"]
    failed = sum(codes.values())
    return {
        "finished": count,
        "failed": failed,
        "failure_rate": round(failed / count, 4) if count else 0.0,
        "failed_by_code": dict(sorted(codes.items(), key=lambda item: (-item[1], item[0]))),
    }
