"""Issue #20: analytics/performance/ reads latency percentiles from the roll-up's
duration histogram (within 10% of the exact nearest-rank value, max_ms exact) and
so costs the same number of statements at any size of the log."""

from __future__ import annotations

import itertools
import math
import re
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from django_ai_fields.models import LATENCY_BOUNDS, AIJob, AIUsage
from django_ai_fields.money import usage_rollup
from django_ai_fields.observability import analytics
from tests.surfaces import make_usage, make_user

pytestmark = pytest.mark.django_db

PERFORMANCE = "/ai/analytics/performance/"
LOG = connection.ops.quote_name("django_ai_fields_aiusage")
JOB_TABLE = connection.ops.quote_name("django_ai_fields_aijob")


@pytest.fixture
def root() -> Client:
    client = Client()
    client.force_login(make_user("root", superuser=True))
    return client


def durations(count: int, seed: int = 7) -> list[int]:
    """Durations from 3 ms to a few minutes, spread over orders of magnitude."""
    return [int(3 * 1.9 ** ((n * seed * 7919) % 1000 / 60)) for n in range(count)]


def exact_percentile(values: list[int], pct: int) -> int:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(pct / 100 * len(ordered))) - 1]


def within_bound(approximate: int, exact: int) -> bool:
    return abs(approximate - exact) <= max(0.10 * exact, 8)


def test_every_bucket_middle_is_within_ten_percent_of_its_durations():
    for lower, upper in itertools.pairwise(LATENCY_BOUNDS[1:]):
        histogram = [0] * len(LATENCY_BOUNDS)
        histogram[LATENCY_BOUNDS.index(lower)] = 1
        middle = analytics.approximate_percentile(histogram, 50, upper * 2)
        assert middle is not None
        for duration in (lower, upper - 1):  # the worst cases are the bucket's ends
            assert abs(middle - duration) <= 0.10 * duration, (lower, upper)
    assert analytics.approximate_percentile([1, *[0] * 65], 50, 15) == 8  # below 16 ms
    assert analytics.approximate_percentile([0] * 66, 50, 0) is None


def test_percentiles_match_the_raw_log_within_the_bound(root):
    values = {"m1": durations(300), "m2": durations(120, seed=3)}
    for model, times in values.items():
        for n, ms in enumerate(times):
            if n % 4 == 0:  # some past the app: read from the log until caught up
                make_usage(provider="openai", model=model, duration_ms=ms)
            else:
                usage_rollup.log_call(provider="openai", model=model, duration_ms=ms)
    # Neither failures nor result-cache hits count in latency.
    usage_rollup.log_call(provider="openai", model="m1", duration_ms=999_999, success=False)
    usage_rollup.log_call(provider="openai", model="m1", duration_ms=0, cache_hit=True)
    for when in ("before the catch-up", "after"):
        body = root.get(PERFORMANCE).json()
        for row in body["latency"]:
            times = values[row["model"]]
            assert row["calls"] == len(times), when
            assert row["max_ms"] == max(times), when
            for pct in (50, 95):
                exact = exact_percentile(times, pct)
                assert within_bound(row[f"p{pct}_ms"], exact), (when, pct, exact, row)
        usage_rollup.catch_up()
    assert not AIUsage.objects.filter(rolled_up=False).exists()


def test_a_filter_the_roll_up_cannot_answer_reads_the_log_the_same_way():
    for ms in durations(80):
        usage_rollup.log_call(tenant="acme", provider="openai", model="m", duration_ms=ms)
    (from_rollup,) = analytics.latency(AIUsage.objects.all())
    (from_log,) = analytics.latency(AIUsage.objects.filter(input_tokens__gte=0))  # not a key
    assert from_rollup == from_log


def test_performance_statements_do_not_grow_with_the_log(root):
    for ms in durations(5):
        usage_rollup.log_call(provider="openai", model="m", duration_ms=ms)
    AIJob.objects.create(status="failed", error_code="timeout")
    with CaptureQueriesContext(connection) as small:
        root.get(PERFORMANCE)
    for ms in durations(150):
        usage_rollup.log_call(provider="anthropic", model="c", duration_ms=ms, cost_usd=Decimal(0))
    AIJob.objects.bulk_create(AIJob(status="succeeded", input_hash=str(n)) for n in range(30))
    with CaptureQueriesContext(connection) as large:
        body = root.get(PERFORMANCE).json()
    assert len(large) == len(small)
    assert len(body["latency"]) == 2
    assert body["jobs"]["finished"] == 31 and body["jobs"]["failed_by_code"] == {"timeout": 1}
    for query in large.captured_queries:
        for part in query["sql"].split("UNION ALL"):
            if f"FROM {LOG}" in part and "." + connection.ops.quote_name("rolled_up") not in part:
                assert not re.search(r"ORDER BY .*duration_ms|COUNT\(|SUM\(", part), part
    job_statements = [q["sql"] for q in large.captured_queries if JOB_TABLE in q["sql"]]
    assert len(job_statements) == 1  # finished and failed jobs counted in one pass
