"""What keeps the AIJob changelist cheap on a table of millions of jobs: a row count
that stops at ``COUNT_CAP`` (on PostgreSQL an unfiltered list shows the planner's
estimate of the table's rows instead), and tenant and model filter choices read
from small tables (the usage roll-up, quotas, tenant policies) instead of
``SELECT DISTINCT`` over every job.

The page of jobs itself is ``ORDER BY id DESC LIMIT 100`` on the primary key.
"""

from __future__ import annotations

from typing import Any, cast

from django.core.paginator import Paginator
from django.db import connections, models
from django.utils.functional import cached_property

from ..models import AIJob, AIUsageDaily, Quota, TenantPolicy
from ..tenants.permissions import scope_or_empty
from .usage_changelist import ValuesReadElsewhereFilter

COUNT_CAP = 10_000


class JobPaginator(Paginator):
    """Counts the selected jobs up to COUNT_CAP + 1 rows (a bounded scan); past the
    cap, an unfiltered list on PostgreSQL shows the table's estimated size
    (``pg_class.reltuples``), any other list COUNT_CAP: the pages past it are not
    offered (narrow the list with a filter or a search)."""

    @cached_property
    def count(self) -> int:
        jobs = cast("models.QuerySet[AIJob]", self.object_list)
        counted = jobs.order_by()[: COUNT_CAP + 1].count()
        if counted <= COUNT_CAP:
            return counted
        estimate = estimated_rows(jobs)
        return COUNT_CAP if estimate is None else max(estimate, COUNT_CAP)


def estimated_rows(queryset: models.QuerySet[Any]) -> int | None:
    """The planner's estimate of the rows of an unfiltered queryset's table on
    PostgreSQL (as of its last ANALYZE); None for a filtered one or another database."""
    connection = connections[queryset.db]
    if connection.vendor != "postgresql" or queryset.query.where or queryset.query.is_sliced:
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
            [connection.ops.quote_name(queryset.model._meta.db_table)],
        )
        row = cursor.fetchone()
    return int(row[0]) if row and row[0] >= 0 else None  # -1: never analyzed


class SmallTableValuesFilter(ValuesReadElsewhereFilter):
    """A job column's values from small tables (``in_small_tables()``), not the job
    table. A value given in the URL that is not among them is still offered (and
    selected)."""

    def values(self, request: Any, model_admin: Any) -> list[Any] | None:
        return sorted(set(self.in_small_tables(request)) | set(self.lookup_val or ()))

    def in_small_tables(self, request: Any) -> list[str]:
        raise NotImplementedError


def _distinct(queryset: models.QuerySet[Any], column: str) -> list[str]:
    return list(
        queryset.exclude(**{column: ""}).order_by().values_list(column, flat=True).distinct()
    )


class JobTenantFilter(SmallTableValuesFilter):
    """Tenants that made calls (the usage roll-up), have a quota or a policy; scoped
    to the user's tenant as the list is."""

    def in_small_tables(self, request: Any) -> list[str]:
        found: set[str] = set()
        for table in (AIUsageDaily, Quota, TenantPolicy):
            found.update(_distinct(scope_or_empty(table.objects.all(), request.user), "tenant"))
        return sorted(found)


class JobModelFilter(SmallTableValuesFilter):
    """Models that were called (the usage roll-up), within the user's tenant."""

    def in_small_tables(self, request: Any) -> list[str]:
        daily = scope_or_empty(AIUsageDaily.objects.all(), request.user)
        return sorted(_distinct(daily, "model"))
