"""Race-free quotas and budgets: reserve before the call, settle after.

A reservation is one conditional ``UPDATE ... SET used = used + n WHERE
used + n <= limit`` per usage row, so any number of workers never overshoot a
limit, on PostgreSQL or SQLite. Units: requests, tokens, micro-dollars. Every read
here decides (may this call go ahead?): it goes to the database of the job (the
pinned one) or the router's write database, never to a replica that may lag.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import TypeVar

from django.db import IntegrityError
from django.db.models import F, Manager
from django.utils import timezone
from django.utils.translation import gettext as _

from .. import databases, signals
from ..conf import get_setting
from ..databases import for_decisions
from ..models import ErrorCode, Quota, QuotaKind, QuotaPeriod, QuotaUsage
from .pricing import ceil_micro, cost_micro, usd_to_micro

M = TypeVar("M", Quota, QuotaUsage)


def _decided(model: type[M]) -> Manager[M]:
    """``model``'s rows as decisions must see them (databases.for_decisions)."""
    return model.objects.db_manager(for_decisions(model))


@dataclass(frozen=True)
class Demand:
    """Units one call uses (or may use, for a reservation)."""

    requests: int
    tokens: int
    # None: the model has no known price (a cost limit then refuses the call).
    cost_micro: int | None
    # The priced model, named in a refusal when its price is unknown.
    model: str = ""

    def units(self, kind: str) -> int:
        return {
            QuotaKind.REQUESTS: self.requests,
            QuotaKind.TOKENS: self.tokens,
            QuotaKind.COST_USD: self.cost_micro or 0,
        }[kind]  # type: ignore[index]


NOTHING = Demand(0, 0, 0)
# [usage_row_id, kind, units], as AIJob.reservations (JSON) keeps it.
Reservation = list[int | str]


@dataclass(frozen=True)
class Budget:
    """A field's monthly budget_usd, counted per tenant."""

    scope: str
    limit_usd: Decimal


class QuotaRefused(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def worst_case(model: str, prompt_bytes: int, max_tokens: int, provider: str = "") -> Demand:
    """Upper bound of a call: every prompt byte a token (true for byte-level BPE
    tokenizers), plus max_tokens of output, at the model's prices."""
    cost = cost_micro(model, input_tokens=prompt_bytes, output_tokens=max_tokens, provider=provider)
    return Demand(1, prompt_bytes + max_tokens, None if cost is None else ceil_micro(cost), model)


def period_start(period: str, today: datetime.date | None = None) -> datetime.date:
    today = today or timezone.localdate()
    return today.replace(day=1) if period == QuotaPeriod.MONTH else today


def applicable_quotas(tenant: str) -> list[Quota]:
    """The tenant's own quotas, and the defaults (blank tenant) it has none for."""
    quotas = _decided(Quota).filter(tenant__in={tenant, ""}).order_by("tenant")
    chosen: dict[tuple[str, str], Quota] = {}
    for quota in quotas:  # blank tenant sorts first; the tenant's own row overrides it
        chosen[(quota.kind, quota.period)] = quota
    return [q for q in chosen.values() if not q.is_unlimited]


def limit_units(kind: str, limit: Decimal) -> int:
    return usd_to_micro(limit) if kind == QuotaKind.COST_USD else int(limit)


def _usage_row_id(tenant: str, scope: str, kind: str, period: str) -> int:
    key = {
        "tenant": tenant,
        "scope": scope,
        "kind": kind,
        "period": period,
        "period_start": period_start(period),
    }
    row_id = _decided(QuotaUsage).filter(**key).values_list("pk", flat=True).first()
    if row_id is not None:
        return row_id
    try:
        with databases.atomic(QuotaUsage):
            return _decided(QuotaUsage).create(**key).pk
    except IntegrityError:  # created concurrently
        return _decided(QuotaUsage).filter(**key).values_list("pk", flat=True).get()


def _take(row_id: int, units: int, limit: int) -> bool:
    return bool(
        _decided(QuotaUsage)
        .filter(pk=row_id, used__lte=limit - units)
        .update(used=F("used") + units)
    )


def reserve(tenant: str, demand: Demand, budget: Budget | None = None) -> list[Reservation]:
    """Reserve ``demand`` against every applicable quota and the field budget,
    all or nothing. Returns the reservations: [[usage_row_id, kind, units], ...]."""
    reservations: list[Reservation] = []
    quotas = applicable_quotas(tenant)
    if not quotas and budget is None:
        return reservations  # nothing to reserve: no transaction either
    refuse_unpriced(tenant, demand, quotas, budget)
    with databases.atomic(QuotaUsage):
        for quota in quotas:
            units = demand.units(quota.kind)
            row_id = _usage_row_id(tenant, "", quota.kind, quota.period)
            if not _take(row_id, units, limit_units(quota.kind, quota.limit)):
                raise QuotaRefused(
                    ErrorCode.QUOTA_EXCEEDED,
                    _("The %(kind)s quota per %(period)s of tenant %(tenant)s is used up.")
                    % {"kind": quota.kind, "period": quota.period, "tenant": tenant or "-"},
                )
            reservations.append([row_id, quota.kind, units])
        if budget is not None:
            units = demand.units(QuotaKind.COST_USD)  # priced: refuse_unpriced checked
            row_id = _usage_row_id(tenant, budget.scope, QuotaKind.COST_USD, QuotaPeriod.MONTH)
            if not _take(row_id, units, usd_to_micro(budget.limit_usd)):
                raise QuotaRefused(
                    ErrorCode.BUDGET_EXCEEDED,
                    _("The monthly budget of %(scope)s (%(limit)s USD) is used up.")
                    % {"scope": budget.scope.removeprefix("budget:"), "limit": budget.limit_usd},
                )
            reservations.append([row_id, QuotaKind.COST_USD, units])
    return reservations


def refuse_unpriced(
    tenant: str, demand: Demand, quotas: list[Quota], budget: Budget | None
) -> None:
    """A cost limit cannot hold for a model without a price: refuse before the call."""
    if demand.cost_micro is not None:
        return
    fix = _("add it to AI_FIELDS['PRICING'] or map it to a priced model with PRICE_AS")
    if any(quota.kind == QuotaKind.COST_USD for quota in quotas):
        raise QuotaRefused(
            ErrorCode.QUOTA_EXCEEDED,
            _(
                "Model %(model)s has no known price, so the cost quota of tenant "
                "%(tenant)s cannot be enforced: %(fix)s."
            )
            % {"model": demand.model or "-", "tenant": tenant or "-", "fix": fix},
        )
    if budget is not None:
        raise QuotaRefused(
            ErrorCode.BUDGET_EXCEEDED,
            _(
                "Model %(model)s has no known price, so the budget of %(scope)s "
                "cannot be enforced: %(fix)s."
            )
            % {
                "model": demand.model or "-",
                "scope": budget.scope.removeprefix("budget:"),
                "fix": fix,
            },
        )


def settle(reservations: list[Reservation], used: Demand) -> None:
    """Replace each reservation by what the call really used."""
    for row_id, kind, units in reservations:
        delta = used.units(str(kind)) - int(units)
        if delta:
            _decided(QuotaUsage).filter(pk=row_id).update(used=F("used") + delta)


def alert_fractions() -> list[Decimal]:
    """QUOTA_ALERT_AT as Decimals in (0, 1+], ascending."""
    return sorted({Decimal(str(f)) for f in get_setting("QUOTA_ALERT_AT") or () if f and f > 0})


def check_alerts(tenant: str, reservations: list[Reservation]) -> None:
    """Fire ``quota_threshold_reached`` for each QUOTA_ALERT_AT fraction that a
    tenant quota's use has crossed this period, exactly once per crossing: a
    worker signals a fraction only if its conditional UPDATE moved the period
    row's marker past it (the fractions are tried in ascending order)."""
    fractions = alert_fractions()
    row_ids = [int(row_id) for row_id, _kind, _units in reservations]
    if not fractions or not row_ids:
        return
    rows = _decided(QuotaUsage).filter(pk__in=row_ids, scope="", tenant=tenant)
    by_key = {(q.kind, q.period): q for q in applicable_quotas(tenant)}
    for row in rows:
        quota = by_key.get((row.kind, row.period))
        if quota is None:
            continue
        limit = limit_units(quota.kind, quota.limit)
        for fraction in fractions:
            if limit <= 0 or row.used < fraction * limit:
                break
            permille = int(fraction * 1000)
            moved = (
                _decided(QuotaUsage)
                .filter(pk=row.pk, alerted_permille__lt=permille)
                .update(alerted_permille=permille)
            )
            if moved:
                databases.on_commit(partial(_send_alert, tenant, quota, fraction))


def _send_alert(tenant: str, quota: Quota, fraction: Decimal) -> None:
    signals.quota_threshold_reached.send(
        sender=Quota, tenant=tenant, quota=quota, fraction=float(fraction)
    )


def released(reservations: list[Reservation]) -> list[Reservation]:
    """The same reservations holding nothing (their units were given back already)."""
    return [[row_id, kind, 0] for row_id, kind, _units in reservations]


def release(reservations: list[Reservation]) -> None:
    """Give back reservations of a run that never settled (its worker died)."""
    settle(reservations, NOTHING)


def usage_for(tenant: str, kind: str, period: str) -> int:
    return (
        _decided(QuotaUsage)
        .filter(
            tenant=tenant, scope="", kind=kind, period=period, period_start=period_start(period)
        )
        .values_list("used", flat=True)
        .first()
        or 0
    )
