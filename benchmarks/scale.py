"""How the read surfaces cost at 1 thousand, 1 million and 10 million rows.

Fills one PostgreSQL database per size (``scale_bench_<size>`` on the server of
``DATABASE_URL``) with usage rows and jobs by ``generate_series`` (minutes, not
hours: the secondary indexes are built after the insert), then times each surface
a person or a probe meets: the admin pages, the analytics API, ``ai_usage``,
``ai_status``, a worker's lease and the status badges of a list page. Prints the
medians per size, their ratios to the smallest size, and ``EXPLAIN (ANALYZE,
BUFFERS)`` of the two slowest statements of any surface that still grows.

Run it from the root of the checkout to measure. Before and after a change:

    # in a checkout of the older code (its own venv):
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test REDIS_URL=redis://127.0.0.1:6379/7 \
        python /path/to/benchmarks/scale.py --label before --output /path/to/results.json
    # in this checkout: the same databases, migrated to this code, measured again
    DATABASE_URL=... REDIS_URL=... .venv/bin/python benchmarks/scale.py --reuse \
        --label after --output /path/to/results.json
    .venv/bin/python benchmarks/scale.py --compare before,after --output /path/to/results.json

Without ``--reuse`` each database is created anew; when the usage roll-up exists
the filled rows are rolled up in SQL as the migration does. Figures:
docs/performance.md.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# The checkout whose code is measured: run from its root (an older checkout measures
# the "before" with this same script).
ROOT = Path.cwd()
DB_NAME = "scale_bench"  # --database to change
DAYS = 90  # usage and jobs spread over the last 90 days
TENANTS = 20
MODELS = (
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4.1"),
    ("anthropic", "claude-haiku-4-5"),
    ("anthropic", "claude-sonnet-4-5"),
)
FILL_CHUNK = 1_000_000
OPEN_JOBS = 200  # pending/queued/running jobs among the newest, the rest finished
BADGE_ROWS = 50
SLOW = 2.0  # seconds: a surface slower than this is timed 3 times, not --reps


def configure(database_url: str, redis_url: str | None, name: str) -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from django.conf import settings

    url = urlsplit(database_url)
    if redis_url:
        queues = {"default": {"URL": redis_url}}
    else:
        import fakeredis

        pool = fakeredis.FakeRedis().connection_pool
        queues = {
            "default": {"HOST": "fake", "PORT": 0, "REDIS_CLIENT_KWARGS": {"connection_pool": pool}}
        }
    settings.configure(
        SECRET_KEY="scale-benchmark",
        DEBUG=False,
        USE_TZ=True,
        TIME_ZONE="UTC",
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        ALLOWED_HOSTS=["testserver"],
        INSTALLED_APPS=[
            "django.contrib.admin",
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.messages",
            "django_rq",
            "import_export",
            "django_ai_fields",
            "tests.testapp",
        ],
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.common.CommonMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
        ],
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "APP_DIRS": True,
                "OPTIONS": {
                    "context_processors": [
                        "django.template.context_processors.request",
                        "django.contrib.auth.context_processors.auth",
                        "django.contrib.messages.context_processors.messages",
                    ]
                },
            }
        ],
        ROOT_URLCONF="tests.urls",
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": name,
                "USER": url.username or "postgres",
                "PASSWORD": url.password or "",
                "HOST": url.hostname or "127.0.0.1",
                "PORT": str(url.port or 5432),
            }
        },
        RQ_QUEUES=queues,
        AI_FIELDS={"DEFAULT_PROVIDER": "offline"},
        LOGGING={
            "version": 1,
            "disable_existing_loggers": False,
            "root": {"handlers": [], "level": "CRITICAL"},
        },
    )


def recreate_database(database_url: str, name: str) -> None:
    import psycopg

    url = urlsplit(database_url)
    with psycopg.connect(
        host=url.hostname or "127.0.0.1",
        port=url.port or 5432,
        user=url.username or "postgres",
        password=url.password or "",
        dbname=url.path.lstrip("/") or "postgres",
        autocommit=True,
    ) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")


def database_exists(database_url: str, name: str) -> bool:
    import psycopg

    url = urlsplit(database_url)
    with psycopg.connect(
        host=url.hostname or "127.0.0.1",
        port=url.port or 5432,
        user=url.username or "postgres",
        password=url.password or "",
        dbname=url.path.lstrip("/") or "postgres",
        autocommit=True,
    ) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        return found is not None


def use_database(name: str) -> None:
    from django.db import connection

    connection.close()
    connection.settings_dict["NAME"] = name


def migrate() -> float:
    """Seconds ``migrate`` takes (with the roll-up's migration: its back-fill)."""
    from django.core.management import call_command

    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    return time.perf_counter() - started


# -- filling -------------------------------------------------------------------------


def columns(table: str) -> set[str]:
    from django.db import connection

    with connection.cursor() as cursor:
        return {c.name for c in connection.introspection.get_table_description(cursor, table)}


def has_rollup() -> bool:
    from django.db import connection

    return "django_ai_fields_aiusagedaily" in connection.introspection.table_names()


def usage_sql(first: int, last: int, present: set[str]) -> str:
    """INSERT of usage rows first..last: tenants, models, 3% failures, 10% cache hits,
    2% of unknown cost, spread over DAYS days."""
    models = ", ".join(f"'{p}'" for p, _m in MODELS)
    names = ", ".join(f"'{m}'" for _p, m in MODELS)
    values = {
        "tenant": f"'tenant-' || (i % {TENANTS})",
        "job_id": "NULL",
        "provider": f"(ARRAY[{models}])[1 + i % {len(MODELS)}]",
        "model": f"(ARRAY[{names}])[1 + i % {len(MODELS)}]",
        "reported_model": "''",
        "input_tokens": "200 + i % 800",
        "output_tokens": "CASE WHEN i % 33 = 0 THEN 0 ELSE 50 + i % 300 END",
        "cached_tokens": "CASE WHEN i % 5 = 0 THEN 128 ELSE 0 END",
        "cache_write_tokens": "0",
        "reasoning_tokens": "CASE WHEN i % 7 = 0 THEN 40 ELSE 0 END",
        "cost_usd": "CASE WHEN i % 50 = 7 THEN NULL WHEN i % 33 = 0 OR i % 10 = 3 THEN 0 "
        "ELSE ((200 + i % 800) * 0.15 + (50 + i % 300) * 0.6) / 1000000 END",
        "gateway_cost_usd": "NULL",
        "priced_as": "''",
        "tool_calls": "'{}'::jsonb",
        "tool_cost_usd": "0",
        "duration_ms": "100 + (i::bigint * 7919) % 2000",
        "success": "i % 33 <> 0",
        "cache_hit": "i % 33 <> 0 AND i % 10 = 3",
        "error_code": "CASE WHEN i % 33 = 0 THEN (ARRAY['rate_limited', 'timeout', "
        "'provider_unavailable'])[1 + i % 3] ELSE '' END",
        "created_at": f"now() - ((i::bigint * 7919) % ({DAYS} * 86400)) * interval '1 second'",
        "rolled_up": "true",  # rolled up below, in SQL, as the migration does
    }
    missing = required_columns("django_ai_fields_aiusage") - set(values)
    if missing:
        raise SystemExit(f"benchmarks/scale.py: no value for AIUsage column(s) {sorted(missing)}")
    chosen = {name: expr for name, expr in values.items() if name in present}
    return (
        f"INSERT INTO django_ai_fields_aiusage ({', '.join(chosen)}) "
        f"SELECT {', '.join(chosen.values())} FROM generate_series({first}, {last}) AS i"
    )


def jobs_sql(first: int, last: int, content_type: int, present: set[str]) -> str:
    """INSERT of finished jobs first..last (mostly succeeded), one per Lead pk."""
    values = {
        "content_type_id": str(content_type),
        "object_id": "i::text",
        "field_name": "'summary'",
        "function": "'field'",
        "payload": "NULL",
        "tenant": f"'tenant-' || (i % {TENANTS})",
        "status": "CASE WHEN i % 40 = 0 THEN 'failed' WHEN i % 97 = 0 THEN 'superseded' "
        "WHEN i % 211 = 0 THEN 'cancelled' ELSE 'succeeded' END",
        "phase": "'DONE'",
        "progress": "100",
        "attempts": "1",
        "force": "false",
        "triggered_by": "'save'",
        "input_hash": "md5(i::text)",
        "provider": "'openai'",
        "model": "'gpt-4o-mini'",
        "prompt": "''",
        "output": "to_jsonb('answer ' || i)",
        "partial_output": "''",
        "error_code": "CASE WHEN i % 40 = 0 THEN 'timeout' ELSE '' END",
        "error": "''",
        "input_tokens": "300",
        "output_tokens": "80",
        "cost_usd": "0.000093",
        "steps": "'[]'::jsonb",
        "cache_key": "''",
        "reservations": "'[]'::jsonb",
        "run_token": "''",
        "rq_job_id": "''",
        "batch_id": "''",
        "definition_hash": "''",
        "schema": "''",
        "context": "'{}'::jsonb",
        "reviewed_by": "''",
        "created_at": f"now() - ((i::bigint * 7919) % ({DAYS} * 86400)) * interval '1 second'",
        "updated_at": f"now() - ((i::bigint * 7919) % ({DAYS} * 86400)) * interval '1 second'",
        "finished_at": f"now() - ((i::bigint * 7919) % ({DAYS} * 86400)) * interval '1 second'",
    }
    missing = required_columns("django_ai_fields_aijob") - set(values)
    if missing:
        raise SystemExit(f"benchmarks/scale.py: no value for AIJob column(s) {sorted(missing)}")
    chosen = {name: expr for name, expr in values.items() if name in present}
    return (
        f"INSERT INTO django_ai_fields_aijob ({', '.join(chosen)}) "
        f"SELECT {', '.join(chosen.values())} FROM generate_series({first}, {last}) AS i"
    )


def required_columns(table: str) -> set[str]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
            "AND is_nullable = 'NO' AND column_default IS NULL AND column_name <> 'id'",
            [table],
        )
        return {row[0] for row in cursor.fetchall()}


ROLLUP_SQL = """
INSERT INTO django_ai_fields_aiusagedaily (day, tenant, provider, model, success, cache_hit,
    error_code, calls, unknown_cost_calls, input_tokens, output_tokens, cached_tokens,
    cache_write_tokens, reasoning_tokens, cost_micro, tool_cost_micro, gateway_cost_calls,
    gateway_cost_units, duration_ms)
SELECT (created_at AT TIME ZONE 'UTC')::date, tenant, provider, model, success, cache_hit,
    error_code, count(*), count(*) FILTER (WHERE cost_usd IS NULL), sum(input_tokens),
    sum(output_tokens), sum(cached_tokens), sum(cache_write_tokens), sum(reasoning_tokens),
    coalesce(sum(round(cost_usd * 1000000)::bigint), 0),
    coalesce(sum(round(tool_cost_usd * 1000000)::bigint), 0),
    count(*) FILTER (WHERE gateway_cost_usd IS NOT NULL),
    coalesce(sum(round(gateway_cost_usd * 10000000000)::bigint), 0), sum(duration_ms)
FROM django_ai_fields_aiusage WHERE id BETWEEN %s AND %s
GROUP BY 1, 2, 3, 4, 5, 6, 7
ON CONFLICT (day, tenant, provider, model, success, cache_hit, error_code) DO UPDATE SET
    calls = django_ai_fields_aiusagedaily.calls + EXCLUDED.calls,
    unknown_cost_calls = django_ai_fields_aiusagedaily.unknown_cost_calls
        + EXCLUDED.unknown_cost_calls,
    input_tokens = django_ai_fields_aiusagedaily.input_tokens + EXCLUDED.input_tokens,
    output_tokens = django_ai_fields_aiusagedaily.output_tokens + EXCLUDED.output_tokens,
    cached_tokens = django_ai_fields_aiusagedaily.cached_tokens + EXCLUDED.cached_tokens,
    cache_write_tokens = django_ai_fields_aiusagedaily.cache_write_tokens
        + EXCLUDED.cache_write_tokens,
    reasoning_tokens = django_ai_fields_aiusagedaily.reasoning_tokens + EXCLUDED.reasoning_tokens,
    cost_micro = django_ai_fields_aiusagedaily.cost_micro + EXCLUDED.cost_micro,
    tool_cost_micro = django_ai_fields_aiusagedaily.tool_cost_micro + EXCLUDED.tool_cost_micro,
    gateway_cost_calls = django_ai_fields_aiusagedaily.gateway_cost_calls
        + EXCLUDED.gateway_cost_calls,
    gateway_cost_units = django_ai_fields_aiusagedaily.gateway_cost_units
        + EXCLUDED.gateway_cost_units,
    duration_ms = django_ai_fields_aiusagedaily.duration_ms + EXCLUDED.duration_ms
"""


def rollup_sql() -> str:
    """ROLLUP_SQL, with the duration histogram and the longest duration when the
    roll-up has them (migration 0013_latency_histogram)."""
    present = columns("django_ai_fields_aiusagedaily")
    if "duration_max_ms" not in present:
        return ROLLUP_SQL
    bounds = sorted(int(name[3:]) for name in present if re.fullmatch(r"ms_\d+", name))
    uppers: list[int | None] = [*bounds[1:], None]
    names = ["duration_max_ms", *(f"ms_{bound}" for bound in bounds)]
    values = ["max(duration_ms)"]
    for lower, upper in zip(bounds, uppers, strict=True):
        below = "" if upper is None else f" AND duration_ms < {upper}"
        values.append(f"count(*) FILTER (WHERE duration_ms >= {lower}{below})")
    table = "django_ai_fields_aiusagedaily"
    updates = [f"duration_max_ms = GREATEST({table}.duration_max_ms, EXCLUDED.duration_max_ms)"]
    updates += [f"{name} = {table}.{name} + EXCLUDED.{name}" for name in names[1:]]
    sql = ROLLUP_SQL.replace(
        "gateway_cost_units, duration_ms)",
        f"gateway_cost_units, duration_ms, {', '.join(names)})",
        1,
    )
    sql = sql.replace("sum(duration_ms)\nFROM", f"sum(duration_ms), {', '.join(values)}\nFROM", 1)
    return sql.rstrip() + ",\n    " + ",\n    ".join(updates) + "\n"


def fill(target: int, log: Callable[[str], None]) -> dict[str, float]:
    """Fill an empty site with ``target`` usage rows and jobs; seconds spent per part.
    The secondary indexes are built once at the end and foreign keys are not checked
    per row (the rows are consistent by construction): minutes, not hours."""
    from django.contrib.contenttypes.models import ContentType
    from django.db import connection

    from tests.testapp.models import Lead

    content_type = ContentType.objects.get_for_model(Lead).pk
    usage_cols, job_cols = columns("django_ai_fields_aiusage"), columns("django_ai_fields_aijob")
    spent = {"usage": 0.0, "jobs": 0.0, "rollup": 0.0, "indexes": 0.0, "analyze": 0.0}
    rollup = has_rollup()
    tables = ("django_ai_fields_aiusage", "django_ai_fields_aijob")
    indexes = drop_indexes(tables)
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        for first in range(1, target + 1, FILL_CHUNK):
            last = min(target, first + FILL_CHUNK - 1)
            started = time.perf_counter()
            cursor.execute(usage_sql(first, last, usage_cols))
            spent["usage"] += time.perf_counter() - started
            started = time.perf_counter()
            cursor.execute(jobs_sql(first, last, content_type, job_cols))
            spent["jobs"] += time.perf_counter() - started
            if rollup:
                started = time.perf_counter()
                cursor.execute(rollup_sql(), [first, last])
                spent["rollup"] += time.perf_counter() - started
            log(f"  filled {last:,} rows")
        cursor.execute("SET session_replication_role = DEFAULT")
        started = time.perf_counter()
        for definition in indexes:
            cursor.execute(definition)
        spent["indexes"] = time.perf_counter() - started
    open_jobs(target)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    spent["analyze"] = time.perf_counter() - started
    return spent


def drop_indexes(tables: tuple[str, ...]) -> list[str]:
    """Drop the secondary indexes of ``tables`` (not those behind a constraint); their
    definitions, to build them again after the bulk insert."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = ANY(%s) "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)",
            [list(tables)],
        )
        found = cursor.fetchall()
        for name, _definition in found:
            cursor.execute(f'DROP INDEX "{name}"')
    return [definition for _name, definition in found]


def open_jobs(target: int) -> None:
    """The newest OPEN_JOBS jobs are open (pending, queued, running), as on a live site."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE django_ai_fields_aijob SET status = CASE WHEN id %% 3 = 0 THEN 'pending' "
            "WHEN id %% 3 = 1 THEN 'queued' ELSE 'running' END, phase = 'INIT', "
            "finished_at = NULL, started_at = now(), updated_at = now() "
            "WHERE id > %s AND status NOT IN ('pending', 'queued', 'running')",
            [target - OPEN_JOBS],
        )


# -- the surfaces ----------------------------------------------------------------------


def surfaces() -> dict[str, Callable[[], Any]]:
    from django.contrib.auth.models import User
    from django.core.management import CommandError, call_command
    from django.template import Context, Template
    from django.test import Client

    from django_ai_fields.jobs import lifecycle
    from django_ai_fields.models import AIJob
    from tests.testapp.models import Lead

    client = Client()
    client.force_login(User.objects.get(username="bench"))

    def page(url: str) -> Callable[[], Any]:
        def get() -> None:
            response = client.get(url)
            if response.status_code != 200:
                raise SystemExit(f"{url}: HTTP {response.status_code}")

        return get

    def command(*args: str) -> Callable[[], Any]:
        def run() -> None:
            # ai_status is "unhealthy" without a worker: it still reports.
            with contextlib.suppress(CommandError):
                call_command(*args, stdout=io.StringIO(), stderr=io.StringIO())

        return run

    def lease() -> None:
        job = AIJob.objects.filter(status="pending").order_by("-pk").first()
        assert job is not None
        lifecycle.lease(job.pk)
        AIJob.objects.filter(pk=job.pk).update(status="pending", phase="INIT")

    badge_template = Template(
        "{% load ai_fields %}{% ai_status_prefetch leads %}"
        "{% for lead in leads %}{% ai_status lead 'summary' %}{% endfor %}"
    )

    def badges() -> None:
        leads = Lead.objects.order_by("pk")[:BADGE_ROWS]
        badge_template.render(Context({"leads": leads}))

    return {
        "admin usage changelist": page("/admin/django_ai_fields/aiusage/"),
        "admin usage, one tenant": page("/admin/django_ai_fields/aiusage/?tenant__exact=tenant-3"),
        "admin usage, one month": page(month_url()),
        "admin job changelist": page("/admin/django_ai_fields/aijob/"),
        "admin quota changelist": page("/admin/django_ai_fields/quota/"),
        "API analytics/usage": page("/ai/analytics/usage/"),
        "API analytics/performance": page("/ai/analytics/performance/"),
        "ai_usage": command("ai_usage"),
        "ai_status": command("ai_status", "--no-providers"),
        "lease": lease,
        "badges (50 rows)": badges,
    }


def month_url() -> str:
    from django.utils import timezone

    today = timezone.localdate()
    query = f"created_at__year={today.year}&created_at__month={today.month}"
    return f"/admin/django_ai_fields/aiusage/?{query}"


def prepare_site() -> None:
    from django.contrib.auth.models import User
    from django.core.management import call_command

    from django_ai_fields.models import Quota
    from tests.testapp.models import Lead

    call_command("migrate", verbosity=0)
    User.objects.create_superuser("bench", "bench@example.com", "bench")
    Lead.objects.bulk_create(Lead(name=f"Lead {n}") for n in range(BADGE_ROWS))
    for n in range(TENANTS):
        Quota.objects.create(tenant=f"tenant-{n}", kind="cost_usd", period="month", limit=50)
        Quota.objects.create(tenant=f"tenant-{n}", kind="requests", period="day", limit=10_000)


class Statements:
    """Every statement a surface runs, with its time: a connection execute wrapper, so
    the test client's per-request reset of connection.queries loses none."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, str, Any]] = []

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.seen.append(((time.perf_counter() - started) * 1000, sql, params))


def measure(run: Callable[[], Any], reps: int) -> tuple[float, int]:
    """Median milliseconds of ``reps`` runs after one warm-up, and queries per run."""
    from django.db import connection

    statements = Statements()
    started = time.perf_counter()
    with connection.execute_wrapper(statements):
        run()
    if time.perf_counter() - started > SLOW:
        reps = min(reps, 3)  # a surface taking seconds: three runs say enough
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), len(statements.seen)


def measure_interleaved(
    runs: dict[int, Callable[[], Any]], args: argparse.Namespace
) -> dict[str, dict[str, Any]]:
    """One surface on every size in turn, ``--reps`` rounds: load on a shared machine
    then weighs on every size alike. Median milliseconds and queries per size."""
    from django.db import connection

    times: dict[int, list[float]] = {size: [] for size in runs}
    queries: dict[int, int] = {}
    slow = False
    for size, run in runs.items():  # warm-up, and the queries of one run
        use_database(f"{args.database}_{size}")
        connection.ensure_connection()
        statements = Statements()
        started = time.perf_counter()
        with connection.execute_wrapper(statements):
            run()
        slow = slow or time.perf_counter() - started > SLOW
        queries[size] = len(statements.seen)
    for _ in range(min(args.reps, 3) if slow else args.reps):
        for size, run in runs.items():
            use_database(f"{args.database}_{size}")
            connection.ensure_connection()
            started = time.perf_counter()
            run()
            times[size].append((time.perf_counter() - started) * 1000)
    return {
        str(size): {"ms": round(statistics.median(times[size]), 1), "queries": queries[size]}
        for size in runs
    }


def slowest_queries(run: Callable[[], Any], count: int = 2) -> list[tuple[float, str, Any]]:
    """The ``count`` slowest statements of one run of a surface."""
    from django.db import connection

    statements = Statements()
    with connection.execute_wrapper(statements):
        run()
    return sorted(statements.seen, key=lambda seen: seen[0], reverse=True)[:count]


def explain(sql: str, params: Any) -> str:
    from django.db import connection

    if not sql.lstrip(" (").upper().startswith(("SELECT", "WITH")):
        return "(not a SELECT: not explained)"
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,1000000,10000000")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--label", default="run", help="Name of this run in the results file.")
    parser.add_argument("--output", default="benchmarks/scale-results.json")
    parser.add_argument("--only", help="Comma-separated surface names (default: all).")
    parser.add_argument(
        "--database", default=DB_NAME, help="Prefix of the databases, one per size (NAME_SIZE)."
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="Measure the databases an earlier run filled, migrated to this code first "
        "(the migration's time is recorded): the 'after' of a 'before' run.",
    )
    parser.add_argument(
        "--interleave",
        action="store_true",
        help="Time each surface on every size in turn (fairer on a shared machine).",
    )
    parser.add_argument(
        "--compare",
        metavar="BEFORE,AFTER",
        help="Print a before/after table of two labels of --output and exit.",
    )
    args = parser.parse_args()
    if args.compare:
        print_comparison(json.loads(Path(args.output).read_text()), *args.compare.split(","))
        return
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith("postgres"):
        raise SystemExit("benchmarks/scale.py needs DATABASE_URL=postgres://... (PostgreSQL).")
    sizes = [int(size) for size in args.sizes.split(",")]

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    configure(database_url, os.environ.get("REDIS_URL"), f"{args.database}_{sizes[0]}")
    import django

    django.setup()
    from django.db import connection

    results: dict[str, dict[str, Any]] = {}
    setup: dict[int, dict[str, float]] = {}
    explains: dict[str, list[str]] = {}
    runs: dict[int, dict[str, Callable[[], Any]]] = {}
    for size in sizes:
        name = f"{args.database}_{size}"
        if args.reuse and database_exists(database_url, name):
            use_database(name)
            log(f"{name}: reusing it, migrating it to this code")
            setup[size] = {"migrate": migrate()}
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
        else:
            recreate_database(database_url, name)
            use_database(name)
            prepare_site()
            log(f"{name}: filling {size:,} usage rows and jobs")
            setup[size] = fill(size, log)
        log(f"  roll-up table present: {has_rollup()}; {setup[size]}")
        chosen = surfaces()  # a logged-in client of this database's site
        if args.only:
            chosen = {n: run for n, run in chosen.items() if n in args.only.split(",")}
        runs[size] = chosen
        if not args.interleave:
            for surface, run in chosen.items():
                ms, queries = measure(run, args.reps)
                results.setdefault(surface, {})[str(size)] = {
                    "ms": round(ms, 1),
                    "queries": queries,
                }
                log(f"  {surface}: {ms:.1f} ms, {queries} queries")
    if args.interleave:
        for surface in runs[sizes[-1]]:
            by_size = measure_interleaved({size: runs[size][surface] for size in sizes}, args)
            results[surface] = by_size
            log(f"  {surface}: {by_size}")
    first, last = str(sizes[0]), str(sizes[-1])
    use_database(f"{args.database}_{sizes[-1]}")
    for surface, run in runs[sizes[-1]].items():
        if results[surface][last]["ms"] > 1.5 * max(results[surface][first]["ms"], 5.0):
            explains[surface] = [
                f"-- {ms:.1f} ms\n{sql} -- {params}\n{explain(sql, params)}"
                for ms, sql, params in slowest_queries(run)
            ]
    print_table(results, sizes)
    for name, plans in explains.items():
        print(f"\n## EXPLAIN: {name}\n")
        for plan in plans:
            print(plan, "\n")
    stored = json.loads(Path(args.output).read_text()) if Path(args.output).exists() else {}
    stored[args.label] = {
        "sizes": sizes,
        "reps": args.reps,
        "results": results,
        "setup_seconds": setup,
        "explain": explains,
    }
    Path(args.output).write_text(json.dumps(stored, indent=2) + "\n")


def print_table(results: dict[str, dict[str, Any]], sizes: list[int]) -> None:
    heads = [f"{size:,}" for size in sizes]
    print(
        "| surface | "
        + " | ".join(f"{h} ms (queries)" for h in heads)
        + f" | {heads[-1]} / {heads[0]} |"
    )
    print("| --- |" + " --- |" * (len(sizes) + 1))
    for name, by_size in results.items():
        cells = [f"{by_size[str(s)]['ms']:.1f} ({by_size[str(s)]['queries']})" for s in sizes]
        ratio = by_size[str(sizes[-1])]["ms"] / max(by_size[str(sizes[0])]["ms"], 0.1)
        print(f"| {name} | " + " | ".join(cells) + f" | {ratio:.1f}x |")


def print_comparison(stored: dict[str, Any], before: str, after: str) -> None:
    """Milliseconds (queries) per size, before and after, and the largest/smallest ratio."""
    sizes = [str(size) for size in stored[after]["sizes"]]
    heads = " | ".join(f"{int(size):,}" for size in sizes)
    print(f"| surface | | {heads} | {int(sizes[-1]):,} / {int(sizes[0]):,} |")
    print("| --- | --- |" + " --- |" * (len(sizes) + 1))
    for name in stored[after]["results"]:
        for label in (before, after):
            row = stored[label]["results"].get(name)
            if row is None or not all(size in row for size in sizes):
                continue
            cells = " | ".join(f"{row[s]['ms']:,.0f} ms ({row[s]['queries']})" for s in sizes)
            ratio = row[sizes[-1]]["ms"] / max(row[sizes[0]]["ms"], 0.1)
            print(f"| {name if label == before else ''} | {label} | {cells} | {ratio:.1f}x |")


if __name__ == "__main__":
    main()
