"""Issue #20: the usage surfaces read the daily roll-up, so their queries do not grow
with the call log, and every filter still gives exactly the totals of the raw rows."""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import re
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_ai_fields.models import AIJob, AIUsage, AIUsageDaily
from django_ai_fields.money import usage_rollup
from tests.surfaces import age_job, make_usage, make_user

pytestmark = pytest.mark.django_db

USAGE = "/admin/django_ai_fields/aiusage/"
LOG = '"django_ai_fields_aiusage"'
MODELS = ("gpt-4o-mini", "claude-haiku-4-5", "mystery-model")


@pytest.fixture
def root() -> Client:
    client = Client()
    client.force_login(make_user("root", superuser=True))
    return client


def fill_log(count: int) -> None:
    """``count`` calls over 45 days, three models, two tenants, failures, cache hits and
    calls of unknown cost; written past the app and then caught up, like a long log."""
    for n in range(count):
        failed = n % 7 == 3
        make_usage(
            days_ago=(n * 5) % 45 + 0.3,
            tenant=("acme", "globex")[n % 2],
            provider="anthropic" if n % 3 == 1 else "openai",
            model=MODELS[n % 3],
            input_tokens=100 + n,
            output_tokens=0 if failed else 10 + n,
            cached_tokens=n % 4,
            reasoning_tokens=n % 5,
            cost_usd=None if n % 11 == 5 else Decimal("0.000137") * (n % 9),
            success=not failed,
            error_code="timeout" if failed else "",
            cache_hit=not failed and n % 5 == 0,
        )
    usage_rollup.catch_up()


def totals_text(html: str) -> str:
    return " ".join(re.search(r'class="ai-usage-totals">(.*?)</p>', html, re.S).group(1).split())


def expected_totals(rows: list[AIUsage]) -> str:
    """The totals line computed by hand from the raw rows (not through any query)."""
    cost = sum((row.cost_usd or Decimal(0) for row in rows), Decimal(0)).quantize(Decimal("1e-6"))
    inp = sum(row.input_tokens for row in rows)
    out = sum(row.output_tokens for row in rows)
    calls = f"{len(rows)} call{'s' if len(rows) != 1 else ''}"
    return f"{calls}, {inp + out} tokens ({inp} in, {out} out), {cost} USD"


def aggregates_over_the_log(queries: CaptureQueriesContext) -> list[str]:
    """Statements that count, sum or DISTINCT over the call log itself, other than the
    part for rows not rolled up yet and the count of calls with no answer logged
    (``call_state = 'sent'``): a few rows each, on an index."""
    found = []
    for query in queries.captured_queries:
        sql = query["sql"]
        for part in sql.split("UNION ALL"):
            if f"FROM {LOG}" not in part or '."rolled_up"' in part or '."call_state"' in part:
                continue
            if re.search(r"COUNT\(|SUM\(|DISTINCT", part):
                found.append(part)
    return found


def local_day(days_ago: float) -> datetime.date:
    """The local date of the moment ``days_ago`` days back (fill_log's calls are at
    whole days plus 0.3 back: near local midnight that is the day before)."""
    return timezone.localdate(timezone.now() - datetime.timedelta(days=days_ago))


def month_params(days_ago: float) -> dict[str, str]:
    day = local_day(days_ago)
    return {"created_at__year": str(day.year), "created_at__month": str(day.month)}


def day_params(days_ago: float) -> dict[str, str]:
    return {**month_params(days_ago), "created_at__day": str(local_day(days_ago).day)}


FILTERS = [
    {},
    {"tenant": "acme"},
    {"tenant__exact": "acme"},
    {"model": "claude-haiku-4-5"},
    {"provider": "anthropic", "tenant": "globex"},
    {"success__exact": "0"},
    {"cache_hit__exact": "1"},
    {"error_code__exact": "timeout"},
    {"model__isnull": "False", "success__exact": "1"},
    {"model": "gpt-4o-mini", "error_code__exact": "timeout", "success__exact": "0"},
]


@pytest.mark.parametrize("params", [*FILTERS, "month", "day", "month+tenant"])
def test_changelist_totals_from_the_roll_up_equal_the_raw_rows(root, params):
    fill_log(60)
    if params == "month":
        params = month_params(20.3)
    elif params == "day":
        params = day_params(5.3)
    elif params == "month+tenant":
        params = {**month_params(40.3), "tenant": "acme"}
    with CaptureQueriesContext(connection) as queries:
        response = root.get(USAGE, params)
    assert response.status_code == 200
    rows = list(response.context["cl"].queryset)
    assert rows  # every filter selects something
    assert re.search(
        re.escape(f"</strong> {expected_totals(rows)}") + r"(,| <br>|$)",
        totals_text(response.content.decode()),
    )
    assert aggregates_over_the_log(queries) == []


def test_a_tenant_bound_user_sees_only_its_tenants_totals_and_choices(settings):
    settings.AI_FIELDS = {**settings.AI_FIELDS, "TENANT_FOR_USER": "tests.surfaces.tenant_of"}
    usage_rollup.log_call(tenant="acme", provider="openai", model="m-acme", input_tokens=7)
    usage_rollup.log_call(tenant="globex", provider="openai", model="m-globex", input_tokens=900)
    client = Client()
    client.force_login(make_user("acme-ann", "django_ai_fields.view_aiusage"))
    html = client.get(USAGE).content.decode()
    assert "1 call, 7 tokens (7 in, 0 out)" in totals_text(html)
    assert 'href="?model=m-acme"' in html and "m-globex" not in html
    assert "globex" not in html


def test_a_search_reads_the_log_and_stays_exact(root):
    fill_log(30)
    job = AIJob.objects.create(status="succeeded")
    make_usage(job=job, tenant="acme", input_tokens=5, output_tokens=5, cost_usd="0.5")
    response = root.get(USAGE, {"q": str(job.pk)})
    rows = list(response.context["cl"].queryset)
    assert [row.job_id for row in rows] == [job.pk]
    assert re.search(
        re.escape(f"</strong> {expected_totals(rows)}") + r"(,| <br>|$)",
        totals_text(response.content.decode()),
    )


def test_changelist_queries_do_not_grow_with_the_log(root):
    fill_log(6)
    with CaptureQueriesContext(connection) as small:
        root.get(USAGE)
    fill_log(120)
    with CaptureQueriesContext(connection) as large:
        html = root.get(USAGE).content.decode()
    assert len(large) == len(small)
    assert aggregates_over_the_log(large) == []
    assert "126 AI usage" in html  # the exact count, from the roll-up


def test_filter_choices_and_dates_come_from_the_roll_up(root):
    fill_log(40)
    with CaptureQueriesContext(connection) as queries:
        html = root.get(USAGE).content.decode()
    for model in MODELS:
        assert f'href="?model={model}"' in html
    months = {(timezone.localdate() - datetime.timedelta(days=d)).month for d in range(0, 46)}
    if len(months) > 1:  # the log spans two or three months: the hierarchy offers them
        for month in months:
            assert f"created_at__month={month}" in html
    assert not [q for q in queries.captured_queries if "DISTINCT" in q["sql"] and LOG in q["sql"]]


def test_the_day_of_a_call_is_its_day_in_time_zone(root, settings):
    """A call at 03:00 UTC belongs to the previous day in America/Chicago (TIME_ZONE)."""
    assert settings.TIME_ZONE == "America/Chicago"
    usage_rollup.log_call(provider="openai", model="m", cost_usd="0.1")
    moment = datetime.datetime(2026, 3, 10, 3, 0, tzinfo=datetime.timezone.utc)
    AIUsage.objects.update(created_at=moment, rolled_up=False)
    AIUsageDaily.objects.all().delete()
    usage_rollup.catch_up()
    assert list(AIUsageDaily.objects.values_list("day", flat=True)) == [datetime.date(2026, 3, 9)]
    html = root.get(USAGE, {"created_at__year": "2026", "created_at__month": "3"}).content.decode()
    assert "created_at__day=9" in html and "1 call," in totals_text(html)


def test_another_time_zone_reads_the_log_and_groups_by_its_own_days(root):
    from django_ai_fields.observability.analytics import usage_by

    usage_rollup.log_call(provider="openai", model="m", cost_usd="0.1")
    moment = datetime.datetime(2026, 3, 10, 3, 0, tzinfo=datetime.timezone.utc)
    AIUsage.objects.update(created_at=moment)
    AIUsageDaily.objects.update(day=datetime.date(2026, 3, 9))
    with timezone.override("UTC"):
        (row,) = usage_by(AIUsage.objects.all(), ["day"])
    assert row["day"] == "2026-03-10"


# -- the analytics API and ai_usage ----------------------------------------------------------


def test_usage_analytics_api_matches_the_raw_rows_in_constant_queries(root):
    fill_log(10)
    with CaptureQueriesContext(connection) as small:
        root.get("/ai/analytics/usage/", {"group_by": "tenant,model"})
    fill_log(90)
    with CaptureQueriesContext(connection) as large:
        body = root.get("/ai/analytics/usage/", {"group_by": "tenant,model"}).json()
    assert len(large) == len(small)
    assert aggregates_over_the_log(large) == []
    since = timezone.localdate() - datetime.timedelta(days=29)
    start = timezone.make_aware(datetime.datetime.combine(since, datetime.time.min))
    rows = list(AIUsage.objects.filter(created_at__gte=start))
    assert body["totals"]["calls"] == len(rows)
    cost = sum((row.cost_usd or Decimal(0) for row in rows), Decimal(0))
    assert Decimal(body["totals"]["cost_usd"]) == cost
    acme = [row for row in rows if row.tenant == "acme" and row.model == MODELS[0]]
    (group,) = [g for g in body["rows"] if (g["tenant"], g["model"]) == ("acme", MODELS[0])]
    assert group["calls"] == len(acme)
    assert group["input_tokens"] == sum(row.input_tokens for row in acme)


def test_ai_usage_reads_the_roll_up_in_constant_queries():
    fill_log(8)
    with CaptureQueriesContext(connection) as small:
        call_command("ai_usage", stdout=io.StringIO())
    fill_log(80)
    out = io.StringIO()
    with CaptureQueriesContext(connection) as large:
        call_command("ai_usage", stdout=out)
    assert len(large) == len(small)
    assert aggregates_over_the_log(large) == []
    month_start = timezone.make_aware(
        datetime.datetime.combine(timezone.localdate().replace(day=1), datetime.time.min)
    )
    rows = list(AIUsage.objects.filter(created_at__gte=month_start))
    unknown = [row for row in rows if row.cost_usd is None]
    total = next(line for line in out.getvalue().splitlines() if line.startswith("Total"))
    assert total.split()[1] == str(len(rows))
    if unknown:
        models = ", ".join(sorted({row.model for row in unknown}))
        assert f"Unknown cost: {len(unknown)} call(s) of {models} " in out.getvalue()


# -- ai_cleanup: retention in batches, the roll-up kept ------------------------------------


def test_ai_cleanup_deletes_in_batches_and_keeps_the_totals():
    fill_log(9)
    old_open = AIJob.objects.create(status="running")
    age_job(
        old_open, created_at=datetime.timedelta(days=40), updated_at=datetime.timedelta(days=40)
    )
    make_usage(days_ago=40, job=old_open)  # its job is unfinished: kept
    make_usage(days_ago=40, tenant="acme", cost_usd="2")  # not rolled up yet: counted first
    before = io.StringIO()
    call_command(
        "ai_usage",
        "--month",
        month_params(40)["created_at__year"] + "-" + month_params(40)["created_at__month"].zfill(2),
        stdout=before,
    )
    old = AIUsage.objects.filter(created_at__lt=timezone.now() - datetime.timedelta(days=30))
    deletable = old.exclude(job=old_open).count()
    with CaptureQueriesContext(connection) as queries:
        call_command("ai_cleanup", "--older-than", "30d", "--batch-size", "2", stdout=io.StringIO())
    deletes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("DELETE")]
    assert len(deletes) == -(-deletable // 2)  # one DELETE per batch of 2
    assert AIUsage.objects.filter(job=old_open).exists()
    assert (
        not AIUsage.objects.filter(created_at__lt=timezone.now() - datetime.timedelta(days=30))
        .exclude(job=old_open)
        .exists()
    )
    after = io.StringIO()
    call_command(
        "ai_usage",
        "--month",
        month_params(40)["created_at__year"] + "-" + month_params(40)["created_at__month"].zfill(2),
        stdout=after,
    )
    assert after.getvalue() == before.getvalue()  # the roll-up still counts the deleted calls


# -- ai_status: counts that use the indexes ------------------------------------------------


def status_json() -> dict[str, Any]:
    out = io.StringIO()
    with contextlib.suppress(CommandError):  # unhealthy without a worker; it still reports
        call_command("ai_status", "--no-providers", "--json", stdout=out)
    return json.loads(out.getvalue())


def test_ai_status_counts_open_jobs_and_recently_finished_ones():
    old_done = AIJob.objects.create(status="succeeded")
    age_job(old_done, updated_at=datetime.timedelta(days=2))
    AIJob.objects.create(status="succeeded")
    old_pending = AIJob.objects.create(status="pending", object_id="2")
    age_job(old_pending, updated_at=datetime.timedelta(days=2))
    report = status_json()
    assert report["jobs"]["succeeded"] == 1  # the one finished in the last 24 h
    assert report["jobs"]["pending"] == 1  # open jobs: all of them, however old
    with CaptureQueriesContext(connection) as queries:
        status_json()
    counts = [q["sql"] for q in queries.captured_queries if "GROUP BY" in q["sql"]]
    assert len(counts) == 2  # open jobs, and jobs finished since a day ago
    assert all("'succeeded'" not in sql or '"updated_at" >=' in sql for sql in counts)
