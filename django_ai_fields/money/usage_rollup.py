"""The daily roll-up of the call log: every AIUsage row counted once in AIUsageDaily.

Written in the transaction that inserts the row (``log_call``), so a committed call
is always counted and a rolled-back one never is. Rows written any other way (a
script, a fixture, a worker of an older release) start with ``rolled_up`` False:
readers add them from the log (observability/rollup_reads.py) until ``catch_up``,
run by the sweep and by ``ai_cleanup``, moves them into the roll-up.
Why this stays exact under concurrent workers and crashes: docs/performance.md.
"""

from __future__ import annotations

import bisect
import datetime
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db import IntegrityError, connections, models, transaction
from django.db.models import Count, F, Max, Q, Sum, Value
from django.db.models.functions import Cast, Greatest, Round
from django.utils import timezone

from .. import databases
from ..models import LATENCY_BOUNDS, LATENCY_COLUMNS, AIUsage, AIUsageDaily, CallState

# What a roll-up row is per: a filter on these (and on whole days) selects whole rows.
KEY = ("tenant", "provider", "model", "success", "cache_hit", "error_code")
COUNTERS = (
    "calls",
    "unknown_cost_calls",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_micro",
    "tool_cost_micro",
    "gateway_cost_calls",
    "gateway_cost_units",
    "duration_ms",
)
# Kept as the largest value seen, not summed.
MAXIMA = ("duration_max_ms",)
# Everything a roll-up row keeps: the summed counters, the maxima, the duration
# histogram (a call adds 1 to the bucket of its duration_ms).
ALL_COUNTERS = (*COUNTERS, *MAXIMA, *LATENCY_COLUMNS)
TOKEN_COLUMNS = (
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "duration_ms",
)
COST_COLUMNS = ("cost_usd", "tool_cost_usd", "gateway_cost_usd")
MICRO_PLACES = 6  # AIUsage.cost_usd, tool_cost_usd
GATEWAY_PLACES = 10  # AIUsage.gateway_cost_usd
CATCH_UP_BATCH = 5000


def day_of(moment: datetime.datetime) -> datetime.date:
    """The roll-up day of a timestamp: its date in TIME_ZONE (not the request's zone)."""
    if timezone.is_aware(moment):
        return timezone.localtime(moment, timezone.get_default_timezone()).date()
    return moment.date()


def scaled(value: Decimal | float | str | None, places: int) -> int:
    """An amount of dollars as an integer count of 10**-places dollars."""
    if value is None:
        return 0
    return int(Decimal(str(value)).scaleb(places).to_integral_value(rounding=ROUND_HALF_UP))


def latency_column(duration_ms: int) -> str:
    """The histogram column counting a call of ``duration_ms``."""
    return LATENCY_COLUMNS[bisect.bisect_right(LATENCY_BOUNDS, max(duration_ms, 0)) - 1]


def counters_of(usage: AIUsage) -> dict[str, int]:
    """What one call adds to its roll-up row (of the histogram, its one bucket)."""
    counts = {name: int(getattr(usage, name) or 0) for name in TOKEN_COLUMNS}
    return {
        **counts,
        "duration_max_ms": counts["duration_ms"],
        latency_column(counts["duration_ms"]): 1,
        "calls": 1,
        "unknown_cost_calls": int(usage.cost_usd is None),
        "cost_micro": scaled(usage.cost_usd, MICRO_PLACES),
        "tool_cost_micro": scaled(usage.tool_cost_usd, MICRO_PLACES),
        "gateway_cost_calls": int(usage.gateway_cost_usd is not None),
        "gateway_cost_units": scaled(usage.gateway_cost_usd, GATEWAY_PLACES),
    }


def key_of(usage: AIUsage) -> dict[str, Any]:
    return {"day": day_of(usage.created_at), **{name: getattr(usage, name) for name in KEY}}


def log_call(**values: Any) -> AIUsage:
    """Insert one AIUsage row and count it in its roll-up row, in one transaction."""
    db = databases.for_decisions(AIUsage)  # the job's pinned database, else the router's
    with transaction.atomic(using=db, savepoint=False):  # joins the booking's transaction
        usage = AIUsage.objects.using(db).create(**values, rolled_up=True)
        add(key_of(usage), counters_of(usage), using=db)
    return usage


def log_sent(**values: Any) -> AIUsage:
    """Insert the AIUsage row of a call about to be sent, ``sent`` at its worst case
    (one INSERT). Not rolled up yet: readers add it from the log, and ``settle_call``
    counts it once with what it used; one never settled (its worker died in flight)
    is rolled up as it stands by ``catch_up``."""
    db = databases.for_decisions(AIUsage)
    return AIUsage.objects.using(db).create(**values, call_state=CallState.SENT)


def settle_call(sent: AIUsage, **values: Any) -> AIUsage:
    """Write what a ``sent`` call used into its row and count it once in the roll-up,
    in the booking's transaction: the conditional UPDATE and the roll-up row's
    increment (two queries). If the sweep's ``catch_up`` counted the row as sent
    meanwhile, its counters are taken back out first, so every call counts once."""
    db = sent._state.db or databases.for_decisions(AIUsage)
    values = {**values, "call_state": CallState.SETTLED}
    with transaction.atomic(using=db, savepoint=False):
        rows = AIUsage.objects.using(db).filter(pk=sent.pk)
        if not rows.filter(rolled_up=False).update(**values, rolled_up=True):
            counted = rows.select_for_update().first()
            if counted is None:  # deleted meanwhile: log the call anew
                return log_call(**{**fields_of(sent), **values})
            negated = {name: -value for name, value in counters_of(counted).items()}
            add(key_of(counted), negated, using=db)
            rows.update(**values)
        for name, value in values.items():
            setattr(sent, name, value)
        sent.rolled_up = True
        add(key_of(sent), counters_of(sent), using=db)
    return sent


def fields_of(usage: AIUsage) -> dict[str, Any]:
    """The column values of a usage row, to insert it again."""
    skipped = {"id", "created_at", "rolled_up", "call_state"}
    return {
        f.attname: getattr(usage, f.attname)
        for f in AIUsage._meta.concrete_fields
        if f.attname not in skipped
    }


def add(
    key: Mapping[str, Any],
    counters: Mapping[str, int],
    *,
    using: str,
    model: type[models.Model] = AIUsageDaily,
) -> None:
    """Add ``counters`` to the roll-up row of ``key`` (of ``model``: AIUsageDaily, or
    another table of counters with a unique key), creating it if need be: one
    statement that adds in the database (``calls = calls + 1``), so concurrent writers
    never lose an increment. Call inside a transaction."""
    connection = connections[using]
    template = UPSERTS.get(connection.vendor)
    if template is None:
        _add_portably(key, counters, using=using, model=model)
        return
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    names = [*key, *counters]
    sql = template.format(
        table=table,
        columns=", ".join(quote(name) for name in names),
        values=", ".join(["%s"] * len(names)),
        key=", ".join(quote(name) for name in key),
        updates=", ".join(
            (MAX_TERMS if name in MAXIMA else UPDATE_TERMS)[connection.vendor].format(
                table=table, column=quote(name)
            )
            for name in counters
        ),
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*key.values(), *counters.values()])


# One atomic upsert per database: it inserts the row, or locks the existing one and
# adds to it, even when another transaction inserts the same key at the same moment.
UPSERTS = {
    "postgresql": "INSERT INTO {table} ({columns}) VALUES ({values}) "
    "ON CONFLICT ({key}) DO UPDATE SET {updates}",
    "sqlite": "INSERT INTO {table} ({columns}) VALUES ({values}) "
    "ON CONFLICT ({key}) DO UPDATE SET {updates}",
    "mysql": "INSERT INTO {table} ({columns}) VALUES ({values}) ON DUPLICATE KEY UPDATE {updates}",
}
UPDATE_TERMS = {
    "postgresql": "{column} = {table}.{column} + EXCLUDED.{column}",
    "sqlite": "{column} = {table}.{column} + excluded.{column}",
    "mysql": "{column} = {column} + VALUES({column})",
}
MAX_TERMS = {
    "postgresql": "{column} = GREATEST({table}.{column}, EXCLUDED.{column})",
    "sqlite": "{column} = max({table}.{column}, excluded.{column})",
    "mysql": "{column} = GREATEST({column}, VALUES({column}))",
}


def _add_portably(
    key: Mapping[str, Any], counters: Mapping[str, int], *, using: str, model: type[models.Model]
) -> None:
    """``add()`` on another database: UPDATE, else INSERT; an INSERT that loses the
    race for the unique key (in a savepoint) adds to the winner's row instead."""
    rows = model._default_manager.using(using).filter(**key)
    increments = {
        name: Greatest(F(name), Value(value)) if name in MAXIMA else F(name) + value
        for name, value in counters.items()
    }
    if rows.update(**increments):
        return
    try:
        with transaction.atomic(using=using):
            model._default_manager.using(using).create(**key, **counters)
    except IntegrityError:
        if not rows.update(**increments):
            raise


def catch_up(
    *, using: str | None = None, batch: int = CATCH_UP_BATCH, batches: int | None = None
) -> int:
    """Roll up the rows written past ``log_call`` (at most ``batches`` batches); returns
    how many. Each batch is one transaction that locks its rows, counts them and marks
    them, so two sweeps at once, or a crash halfway, never count a row twice or lose one."""
    db = using or databases.for_decisions(AIUsage)
    return in_batches(lambda: _catch_up_batch(db, batch), batches)


def in_batches(one_batch: Callable[[], int], batches: int | None) -> int:
    """Run ``one_batch`` until it moves nothing (or ``batches`` times); the rows moved."""
    done = runs = 0
    while batches is None or runs < batches:
        moved = one_batch()
        if not moved:
            break
        done, runs = done + moved, runs + 1
    return done


def _catch_up_batch(db: str, batch: int) -> int:
    with transaction.atomic(using=db):
        pending = AIUsage.objects.using(db).filter(rolled_up=False).order_by("pk")
        rows = list(
            pending.select_for_update().only("created_at", *KEY, *COST_COLUMNS, *TOKEN_COLUMNS)[
                :batch
            ]
        )
        if not rows:
            return 0
        marked = pending.filter(pk__in=[row.pk for row in rows]).update(rolled_up=True)
        if marked != len(rows):  # another writer got there first: count nothing
            raise RuntimeError("Roll-up catch-up raced with another writer; run it again.")
        for key, counters in summed(rows).items():
            add(dict(key), counters, using=db)
    return len(rows)


def summed(rows: Iterable[AIUsage]) -> dict[tuple[tuple[str, Any], ...], dict[str, int]]:
    """The counters of many rows, added up per roll-up key."""
    groups: dict[tuple[tuple[str, Any], ...], dict[str, int]] = defaultdict(
        lambda: dict.fromkeys(ALL_COUNTERS, 0)
    )
    for row in rows:
        totals = groups[tuple(key_of(row).items())]
        for name, value in counters_of(row).items():
            totals[name] = max(totals[name], value) if name in MAXIMA else totals[name] + value
    return groups


# -- the same counters computed in SQL, over raw rows or over roll-up rows ------------


def _scaled_sum(column: str, places: int) -> Sum:
    """Sum of a decimal column as integers of 10**-places (rounded per row: exact on
    SQLite too, where decimals are stored as floats)."""
    scaled_column = Round(F(column) * Value(Decimal(10) ** places))
    return Sum(Cast(scaled_column, models.BigIntegerField()), default=0)


def raw_counters() -> dict[str, Any]:
    """Aggregates over AIUsage rows giving AIUsageDaily's counters, in ALL_COUNTERS'
    order (a UNION with daily_counters() matches columns by position)."""
    counters = {
        "calls": Count("pk"),
        "unknown_cost_calls": Count("pk", filter=Q(cost_usd__isnull=True)),
        **{name: Sum(name, default=0) for name in TOKEN_COLUMNS},
        "cost_micro": _scaled_sum("cost_usd", MICRO_PLACES),
        "tool_cost_micro": _scaled_sum("tool_cost_usd", MICRO_PLACES),
        "gateway_cost_calls": Count("pk", filter=Q(gateway_cost_usd__isnull=False)),
        "gateway_cost_units": _scaled_sum("gateway_cost_usd", GATEWAY_PLACES),
        "duration_max_ms": Max("duration_ms", default=0),
        **_latency_counts(),
    }
    return {name: counters[name] for name in ALL_COUNTERS}


def _latency_counts() -> dict[str, Count]:
    """The duration histogram of AIUsage rows: calls per bucket."""
    uppers: list[int | None] = [*LATENCY_BOUNDS[1:], None]
    counts = {}
    for column, lower, upper in zip(LATENCY_COLUMNS, LATENCY_BOUNDS, uppers, strict=True):
        inside = Q(duration_ms__gte=lower) if upper is None else Q(duration_ms__lt=upper)
        if upper is not None and lower:
            inside &= Q(duration_ms__gte=lower)
        counts[column] = Count("pk", filter=inside)
    return counts


def daily_counters() -> dict[str, Any]:
    """Aggregates over AIUsageDaily rows giving the same counters."""
    return {
        name: Max(name, default=0) if name in MAXIMA else Sum(name, default=0)
        for name in ALL_COUNTERS
    }
