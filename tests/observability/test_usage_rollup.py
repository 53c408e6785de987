"""Issue #20: usage summed once. The daily roll-up (AIUsageDaily) counts every call
exactly: through the real pipeline (failures and cache hits included), under
concurrent writers, for rows written past the app (caught up), and from the log
that existed before the migration."""

from __future__ import annotations

import datetime
import threading
from collections import Counter, defaultdict
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from django_ai_fields.models import LATENCY_BOUNDS, LATENCY_COLUMNS, AIUsage, AIUsageDaily
from django_ai_fields.money import usage_rollup
from django_ai_fields.observability import analytics
from tests.fake_provider import Usage
from tests.testapp.models import Product

# Migrating back and forth inside a test needs DDL in transactions (not MariaDB/MySQL).
NEEDS_DDL_ROLLBACK = pytest.mark.skipif(
    not connection.features.can_rollback_ddl,
    reason="migrating back and forth needs transactional DDL (MariaDB/MySQL have none)",
)

KEY = ("tenant", "provider", "model", "success", "cache_hit", "error_code")


def local_day(moment: datetime.datetime) -> datetime.date:
    """The date in TIME_ZONE (America/Chicago in the tests: not UTC, on purpose)."""
    return timezone.localtime(moment, timezone.get_default_timezone()).date()


def summed_by_hand(rows: Any) -> dict[tuple[Any, ...], Counter]:
    """The expected roll-up, added up in Python from the log (independent of the SQL)."""
    expected: dict[tuple[Any, ...], Counter] = defaultdict(Counter)
    for row in rows:
        key = (local_day(row.created_at), *(getattr(row, name) for name in KEY))
        sums = expected[key]
        sums["calls"] += 1
        sums["unknown_cost_calls"] += row.cost_usd is None
        for name in ("input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens"):
            sums[name] += getattr(row, name)
        sums["cost_micro"] += int((row.cost_usd or Decimal(0)) * 1_000_000)
        sums["gateway_cost_calls"] += row.gateway_cost_usd is not None
        sums["duration_max_ms"] = max(sums["duration_max_ms"], row.duration_ms)
        sums[bucket_by_hand(row.duration_ms)] += 1
    return {key: +sums for key, sums in expected.items()}  # zeros dropped, as in rolled_up()


def bucket_by_hand(duration_ms: int) -> str:
    """The histogram column of a duration: the last bound not above it."""
    return f"ms_{[bound for bound in LATENCY_BOUNDS if bound <= duration_ms][-1]}"


def rolled_up() -> dict[tuple[Any, ...], Counter]:
    found = {}
    for row in AIUsageDaily.objects.all():
        key = (row.day, *(getattr(row, name) for name in KEY))
        names = ("calls", "unknown_cost_calls", "input_tokens", "output_tokens")
        names += ("cached_tokens", "reasoning_tokens", "cost_micro", "gateway_cost_calls")
        names += ("duration_max_ms", *LATENCY_COLUMNS)
        found[key] = Counter({name: getattr(row, name) for name in names if getattr(row, name)})
    return found


def log(days_ago: int = 0, **values: Any) -> AIUsage:
    """A usage row written past the app (as a script or an older worker would), back-dated."""
    row = AIUsage.objects.create(**{"provider": "openai", "model": "gpt-4o-mini", **values})
    moment = timezone.now() - datetime.timedelta(days=days_ago)
    AIUsage.objects.filter(pk=row.pk).update(created_at=moment)
    row.refresh_from_db()
    return row


@pytest.mark.django_db(transaction=True)
def test_every_call_of_the_pipeline_is_rolled_up_exactly(fake_provider, settings):
    from django_ai_fields.jobs.tasks import run_job
    from django_ai_fields.models import AIJob

    settings.AI_FIELDS = {
        **settings.AI_FIELDS,
        "TENANT_RESOLVER": "tests.testapp.tenancy.product_tenant",
        "CACHE_TTL": 3600,
    }
    fake_provider.usage = Usage(input_tokens=900, output_tokens=120, cached_tokens=300)
    for shop, title in [("acme", "Lamp"), ("acme", "Lamp")]:  # the second: cache hits
        Product.objects.create(shop=shop, title=title, price=10)
    for job in AIJob.objects.order_by("pk"):
        run_job(job.pk)
    fake_provider.enqueue_fault(status=400, message="refused", times=2)
    for shop, title in [("globex", "Desk"), ("", "Mug")]:
        Product.objects.create(shop=shop, title=title, price=10)
    for job in AIJob.objects.filter(status__in=["pending", "queued"]).order_by("pk"):
        run_job(job.pk)

    log_rows = list(AIUsage.objects.all())
    assert {row.success for row in log_rows} == {True, False}  # failures are there
    assert any(row.cache_hit for row in log_rows)  # and result cache hits
    assert all(row.rolled_up for row in log_rows)
    assert rolled_up() == summed_by_hand(log_rows)


@pytest.mark.django_db
def test_rows_written_past_the_app_are_counted_and_caught_up_once():
    usage_rollup.log_call(tenant="acme", provider="openai", model="m", cost_usd=Decimal("0.5"))
    log(tenant="acme", model="m", cost_usd=Decimal("0.25"), input_tokens=10, duration_ms=4321)
    log(days_ago=3, tenant="acme", model="m", cost_usd=None, success=False, error_code="timeout")
    expected = analytics.totals(AIUsage.objects.all())
    assert (expected["calls"], expected["cost_usd"]) == (3, Decimal("0.750000"))
    assert expected["unknown_cost_calls"] == 1

    assert usage_rollup.catch_up() == 2
    assert usage_rollup.catch_up() == 0  # idempotent: nothing is counted twice
    assert not AIUsage.objects.filter(rolled_up=False).exists()
    assert analytics.totals(AIUsage.objects.all()) == expected
    assert rolled_up() == summed_by_hand(AIUsage.objects.all())


@pytest.mark.django_db
def test_the_sweep_rolls_up_rows_written_past_the_app():
    from django_ai_fields.jobs.sweep import sweep

    log(tenant="acme", cost_usd=Decimal("0.25"))
    assert AIUsageDaily.objects.count() == 0
    sweep()
    assert AIUsageDaily.objects.get().cost_micro == 250_000
    assert not AIUsage.objects.filter(rolled_up=False).exists()


@pytest.mark.django_db
def test_the_portable_path_for_other_databases_adds_the_same(monkeypatch):
    """Databases without a known upsert: UPDATE, else INSERT (the same totals)."""
    monkeypatch.setattr(usage_rollup, "UPSERTS", {})
    for tokens in (5, 7):
        usage_rollup.log_call(
            provider="openai", model="m", input_tokens=tokens, cost_usd="0.2", duration_ms=tokens
        )
    (row,) = AIUsageDaily.objects.all()
    assert (row.calls, row.input_tokens, row.cost_micro) == (2, 12, 400_000)
    assert (row.duration_max_ms, row.ms_0) == (7, 2)


@pytest.mark.django_db
def test_a_failed_transaction_counts_neither_the_row_nor_its_roll_up():
    from django.db import transaction

    with pytest.raises(RuntimeError), transaction.atomic():
        usage_rollup.log_call(tenant="acme", provider="openai", model="m", cost_usd=Decimal(1))
        raise RuntimeError("the worker died before commit")
    assert (AIUsage.objects.count(), AIUsageDaily.objects.count()) == (0, 0)


postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="concurrent writers need a server database"
)


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_lose_no_call():
    """Eight threads log 25 calls each on the same roll-up row, created by whichever
    comes first: every increment lands."""
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def write() -> None:
        try:
            barrier.wait()
            for _ in range(25):
                usage_rollup.log_call(
                    tenant="acme",
                    provider="openai",
                    model="m",
                    input_tokens=3,
                    cost_usd=Decimal("0.000001"),
                )
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=write) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    (row,) = AIUsageDaily.objects.all()
    assert (row.calls, row.input_tokens, row.cost_micro) == (200, 600, 200)


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_catch_ups_count_each_row_once():
    AIUsage.objects.bulk_create(
        AIUsage(tenant="acme", provider="openai", model="m", input_tokens=1) for _ in range(300)
    )
    done: list[int] = []

    def sweep() -> None:
        try:
            done.append(usage_rollup.catch_up(batch=50))
        except RuntimeError:
            done.append(0)  # lost a race: counted nothing, the other sweep moves the rows
        finally:
            connection.close()

    threads = [threading.Thread(target=sweep) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    usage_rollup.catch_up()
    (row,) = AIUsageDaily.objects.all()
    assert (row.calls, row.input_tokens) == (300, 300)


@NEEDS_DDL_ROLLBACK
@pytest.mark.django_db(transaction=True)
def test_the_migration_fills_the_roll_up_from_the_existing_log():
    executor = MigrationExecutor(connection)
    before = [("django_ai_fields", "0008_job_context")]
    executor.migrate(before)
    old_apps = executor.loader.project_state(before).apps
    old_usage = old_apps.get_model("django_ai_fields", "AIUsage")
    now = timezone.now()
    for n in range(12):
        row = old_usage.objects.create(
            tenant=f"t{n % 2}",
            provider="openai",
            model=f"m{n % 3}",
            input_tokens=n,
            cost_usd=None if n == 5 else Decimal("0.000123") * n,
            success=n % 4 != 0,
            error_code="" if n % 4 else "timeout",
            gateway_cost_usd=Decimal("0.0000000007") if n == 7 else None,
            duration_ms=n * 997,
        )
        old_usage.objects.filter(pk=row.pk).update(created_at=now - datetime.timedelta(days=n))
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    log_rows = list(AIUsage.objects.all())
    assert all(row.rolled_up for row in log_rows)
    assert rolled_up() == summed_by_hand(log_rows)
    assert AIUsageDaily.objects.get(gateway_cost_calls=1).gateway_cost_units == 7
    usage_rollup.log_call(provider="openai", model="m0")  # new rows: rolled up as they come
    assert AIUsage.objects.filter(rolled_up=False).count() == 0
