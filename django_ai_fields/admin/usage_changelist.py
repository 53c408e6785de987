"""What keeps the AIUsage changelist cheap on a log of millions of calls: its row
count, filter choices and date drill-down come from the daily roll-up
(observability/rollup_reads.py) instead of COUNT(*) and DISTINCT over the log.

Each falls back to the log when the roll-up cannot answer (a search by job), with
the count then capped (``COUNT_CAP``): a page of results never waits for a count of
every matching row.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any, cast

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db import models
from django.utils import formats
from django.utils.functional import cached_property
from django.utils.text import capfirst
from django.utils.translation import gettext as _

from ..models import AIUsage
from ..observability import rollup_reads

COUNT_CAP = 10_000


class UsagePaginator(Paginator):
    """Counts the selected calls in the roll-up (exact); else at most COUNT_CAP. Keeps
    the roll-up's counters (``counters``) for the page's totals: one query for both."""

    counters: dict[str, Any] | None = None

    @cached_property
    def count(self) -> int:
        usage = cast("models.QuerySet[AIUsage]", self.object_list)
        if rollup_reads.daily_for(usage) is not None:
            (self.counters,) = rollup_reads.grouped(usage, [])
            return int(self.counters["calls"])
        return usage.order_by()[:COUNT_CAP].count()


class ValuesReadElsewhereFilter(admin.AllValuesFieldListFilter):
    """Django's filter by a column's values, its choices read by ``values()`` from a
    small table instead of Django's ``SELECT DISTINCT`` over a large one (``None``:
    Django's after all)."""

    def __init__(
        self,
        field: Any,
        request: Any,
        params: Any,
        model: Any,
        model_admin: Any,
        field_path: str,
    ) -> None:
        super().__init__(field, request, params, model, model_admin, field_path)
        values = self.values(request, model_admin)
        if values is not None:
            self.lookup_choices = values  # type: ignore[assignment]  # any iterable serves

    def values(self, request: Any, model_admin: Any) -> list[Any] | None:
        raise NotImplementedError


class RolledUpValuesFilter(ValuesReadElsewhereFilter):
    """The usage log's values, from the roll-up."""

    def values(self, request: Any, model_admin: Any) -> list[Any] | None:
        return rollup_reads.distinct_values(model_admin.get_queryset(request), self.field.name)


def date_hierarchy(cl: ChangeList) -> dict[str, Any] | None:
    """The context of Django's admin/date_hierarchy.html, from the days with calls in
    the roll-up (Django's tag selects DISTINCT dates from the log); None: use Django's."""
    days = rollup_reads.days(cl.queryset)
    if days is None or not cl.date_hierarchy:
        return None
    names = {part: f"{cl.date_hierarchy}__{part}" for part in ("year", "month", "day")}
    year, month, day = (cl.params.get(names[part]) for part in ("year", "month", "day"))
    if not (year or month or day) and days and days[0].year == days[-1].year:
        year = days[0].year  # one year (one month) only: open it, as Django's tag does
        if days[0].month == days[-1].month:
            month = days[0].month

    def link(**chosen: Any) -> str:
        filters = {names[part]: value for part, value in chosen.items()}
        return cl.get_query_string(filters, [f"{cl.date_hierarchy}__"])

    if year and month and day:
        back, choices = _one_day(link, datetime.date(int(year), int(month), int(day)))
    elif year and month:
        back, choices = _days_of_month(link, year, month, days)
    elif year:
        back, choices = _months_of_year(link, year, days)
    else:
        back = None
        choices = [
            {"link": link(year=str(y)), "title": str(y)} for y in sorted({d.year for d in days})
        ]
    return {"show": True, "back": back, "choices": choices}


Choices = tuple[dict[str, Any] | None, list[dict[str, Any]]]


def _one_day(link: Callable[..., str], chosen: datetime.date) -> Choices:
    back = {
        "link": link(year=chosen.year, month=chosen.month),
        "title": title(chosen, "YEAR_MONTH_FORMAT"),
    }
    return back, [{"title": title(chosen, "MONTH_DAY_FORMAT")}]


def _days_of_month(
    link: Callable[..., str], year: Any, month: Any, days: list[datetime.date]
) -> Choices:
    choices = [
        {"link": link(year=year, month=month, day=d.day), "title": title(d, "MONTH_DAY_FORMAT")}
        for d in days
    ]
    return {"link": link(year=year), "title": str(year)}, choices


def _months_of_year(link: Callable[..., str], year: Any, days: list[datetime.date]) -> Choices:
    months = sorted({d.replace(day=1) for d in days})
    choices = [
        {"link": link(year=year, month=m.month), "title": title(m, "YEAR_MONTH_FORMAT")}
        for m in months
    ]
    return {"link": link(), "title": _("All dates")}, choices


def title(day: datetime.date, format_name: str) -> str:
    return capfirst(formats.date_format(day, format_name))
