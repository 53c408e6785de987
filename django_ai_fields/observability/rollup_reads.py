"""Usage totals read from the daily roll-up instead of the call log.

A reader hands over the AIUsage queryset it means (the admin's filtered changelist,
the API's scoped period, a month of ``ai_usage``). When every condition of that
queryset is on a column a roll-up row is *per* (tenant, provider, model, success,
cache_hit, error_code) or cuts ``created_at`` at midnights of TIME_ZONE, the same
condition on AIUsageDaily selects exactly the roll-up rows of those calls: the
totals come from there, plus the few log rows not rolled up yet, in one statement.
Any other condition (a search by job, a time of day, a join) reads the log itself.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Count, F, Q, Sum, Value
from django.db.models.expressions import Col
from django.db.models.functions import TruncDate
from django.db.models.lookups import Lookup
from django.db.models.sql.where import NothingNode, WhereNode
from django.utils import timezone

from ..codes import UNFINISHED_STATUSES
from ..models import AIJob, AIJobDaily, AIUsage, AIUsageDaily
from ..money.usage_rollup import (
    ALL_COUNTERS,
    COUNTERS,
    KEY,
    MAXIMA,
    daily_counters,
    raw_counters,
)

GROUPS = ("day", *KEY)
JOB_KEY = ("tenant", "status", "error_code")  # what an AIJobDaily row is per, with its day
# Bounds on created_at that are whole days when they fall on a midnight.
DAY_BOUNDS = {"gte": "day__gte", "lt": "day__lt"}
PLAIN = (str, bool, int)


def days_match() -> bool:
    """True when "a day" means the same here as in the roll-up (TIME_ZONE's days)."""
    if not settings.USE_TZ:
        return True
    return timezone.get_current_timezone_name() == timezone.get_default_timezone_name()


def daily_for(usage: models.QuerySet[AIUsage]) -> models.QuerySet[AIUsageDaily] | None:
    """The roll-up rows counting exactly the calls ``usage`` selects, or None."""
    return _tally_for(usage, AIUsageDaily, KEY)


def _tally_for(
    rows: models.QuerySet[Any], tally: type[models.Model], key: Sequence[str]
) -> models.QuerySet[Any] | None:
    """The rows of ``tally`` (per day and ``key``) counting exactly the rows ``rows``
    selects (AIUsage into AIUsageDaily, AIJob into AIJobDaily), or None."""
    query = rows.query
    # The table's own alias (not query.base_table: reading that caches it on the query).
    table = rows.model._meta.db_table
    if (
        query.combinator
        or query.is_sliced
        or query.distinct
        or any(count for alias, count in query.alias_refcount.items() if alias != table)
    ):
        return None
    condition = _condition(query.where, table, key)
    if condition is None:
        return None
    return tally._default_manager.using(rows.db).filter(condition)


def _condition(node: Any, table: str, key: Sequence[str]) -> Q | None:
    """The Q on the tally meaning the same as a WHERE node on the table, or None."""
    if isinstance(node, NothingNode):
        return Q(pk__in=[])
    if isinstance(node, Lookup):
        return _lookup(node, table, key)
    if not isinstance(node, WhereNode):
        return None
    children = [_condition(child, table, key) for child in node.children]
    if any(child is None for child in children):
        return None
    return Q(*children, _connector=node.connector, _negated=node.negated)


def _lookup(lookup: Lookup, table: str, key: Sequence[str]) -> Q | None:
    lhs, rhs = lookup.lhs, lookup.rhs
    if not isinstance(lhs, Col) or lhs.alias != table or hasattr(rhs, "resolve_expression"):
        return None
    name = lhs.target.name
    if name in key:
        return Q(**{f"{name}__{lookup.lookup_name}": rhs}) if _plain(rhs) else None
    if name == "created_at" and lookup.lookup_name in DAY_BOUNDS:
        day = _midnight_day(rhs)
        return None if day is None else Q(**{DAY_BOUNDS[lookup.lookup_name]: day})
    return None


def _plain(value: Any) -> bool:
    """A value (or list of values) that means the same in a lookup on either model."""
    if isinstance(value, (list, tuple, set, frozenset)):
        return all(isinstance(item, PLAIN) for item in value)
    return isinstance(value, PLAIN)


def _midnight_day(moment: Any) -> datetime.date | None:
    """The date of a midnight in TIME_ZONE; None for any other moment."""
    if not isinstance(moment, datetime.datetime):
        return None
    if timezone.is_aware(moment):
        moment = timezone.localtime(moment, timezone.get_default_timezone())
    return moment.date() if moment.time() == datetime.time.min else None


def grouped(
    usage: models.QuerySet[AIUsage],
    group_by: Sequence[str],
    counters: Sequence[str] = COUNTERS,
) -> list[dict[str, Any]]:
    """The roll-up ``counters`` (default: COUNTERS; any of ALL_COUNTERS, the duration
    histogram and maxima too) of the calls ``usage`` selects, per group of ``group_by``
    (any of GROUPS), as integers; one row even for no calls when not grouped. Asking
    for fewer counters makes a shorter statement."""
    unknown = set(group_by) - set(GROUPS)
    if unknown:
        raise ValueError(f"Cannot group by {', '.join(sorted(unknown))}.")
    counters = [name for name in ALL_COUNTERS if name in counters]  # one order on both sides
    raw = {name: aggregate for name, aggregate in raw_counters().items() if name in counters}
    daily = daily_for(usage)
    if daily is None or ("day" in group_by and not days_match()):
        rows = _labelled(usage, group_by, TruncDate("created_at"), raw)
    else:
        # One statement, one snapshot: a catch-up committing meanwhile moves rows from
        # one side to the other without either reading them twice or missing them.
        summed = {
            name: aggregate for name, aggregate in daily_counters().items() if name in counters
        }
        pending = usage.filter(rolled_up=False)
        rows = (
            _labelled(daily, group_by, F("day"), summed)
            .union(_labelled(pending, group_by, TruncDate("created_at"), raw), all=True)
            .order_by()
        )  # no ORDER BY on the union (Django 6.1 would carry Meta.ordering)
    return _merged(rows, group_by, counters)


def _labelled(
    rows: models.QuerySet[Any], group_by: Sequence[str], day: Any, counters: dict[str, Any]
) -> models.QuerySet[Any]:
    """``rows`` summed per group, with the same columns in the same order on both models
    (a UNION matches columns by position): g_<group>..., then the counters."""
    labels = {f"g_{name}": day if name == "day" else F(name) for name in group_by}
    labels = labels or {"g_all": Value(1)}  # no group: one row over all
    return rows.order_by().annotate(**labels).values(*labels).annotate(**counters)


def _merged(rows: Any, group_by: Sequence[str], counters: Sequence[str]) -> list[dict[str, Any]]:
    """The rows of both sides added up per group, ordered by the groups."""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        key = tuple(row[f"g_{name}"] for name in group_by)
        if key not in merged:
            merged[key] = {**dict(zip(group_by, key, strict=True)), **dict.fromkeys(counters, 0)}
        for name in counters:
            value = int(row[name] or 0)
            if name in MAXIMA:
                merged[key][name] = max(merged[key][name], value)
            else:
                merged[key][name] += value
    if not merged and not group_by:
        merged[()] = dict.fromkeys(counters, 0)
    return [merged[key] for key in sorted(merged, key=_sort_key)]


def _sort_key(key: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((value is None, value) for value in key)


def days(usage: models.QuerySet[AIUsage]) -> list[datetime.date] | None:
    """The days (in TIME_ZONE) with calls among ``usage``, or None if the roll-up
    cannot tell (then ask the log)."""
    if not days_match() or daily_for(usage) is None:
        return None
    return [row["day"] for row in grouped(usage, ["day"], ["calls"])]


def distinct_values(usage: models.QuerySet[AIUsage], column: str) -> list[Any] | None:
    """The values of a KEY column among ``usage``, sorted, or None (then ask the log)."""
    if daily_for(usage) is None:
        return None
    return [row[column] for row in grouped(usage, [column], ["calls"])]


def finished_jobs(jobs: models.QuerySet[AIJob]) -> list[dict[str, Any]]:
    """The finished jobs among ``jobs`` per status and error code (``jobs``: how many),
    from the daily job tally plus the finished jobs not tallied yet, in one statement
    (one snapshot, as grouped()); from the job table when the tally cannot answer."""
    finished = jobs.exclude(status__in=UNFINISHED_STATUSES).order_by()
    outcome = ("status", "error_code")
    tallied = _tally_for(finished, AIJobDaily, JOB_KEY)
    if tallied is None:
        rows: Any = finished.values(*outcome).annotate(n=Count("pk"))
    else:
        rows = (
            tallied.order_by()
            .values(*outcome)
            .annotate(n=Sum("jobs"))
            .union(
                finished.filter(tallied=False).values(*outcome).annotate(n=Count("pk")),
                all=True,
            )
            .order_by()
        )
    merged: dict[tuple[str, str], int] = {}
    for row in rows:
        key = (row["status"], row["error_code"])
        merged[key] = merged.get(key, 0) + int(row["n"] or 0)
    return [
        {"status": status, "error_code": code, "jobs": count}
        for (status, code), count in sorted(merged.items())
        if count
    ]
