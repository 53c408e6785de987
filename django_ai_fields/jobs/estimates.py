"""What a bulk regeneration would cost, before anything is enqueued.

``estimate_pairs`` renders each (row, AI field) request as a job would, and sums
its worst case (every byte sent a token, plus ``max_tokens``, at the model's
current prices: what a cost quota reserves), the expected cost (the field's
recent average per answered call in the row's own tenant, where that tenant has
history: never another tenant's spending), and walks the jobs
through the tenants' quotas and the fields' budgets as the workers would, to
count how many each would refuse. Shared by ``ai_regenerate --dry-run``, the
admin's confirmation page and ``api.estimate``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Avg
from django.utils.translation import gettext as _

from .. import row_keys
from ..calling.pipeline import worst_case
from ..fields import AIFieldMixin
from ..functions import Cancelled
from ..generation import FieldGeneration, RowData
from ..models import AIUsage, QuotaKind, QuotaPeriod, QuotaUsage
from ..money import quotas
from ..money.pricing import ONE_MILLION, micro_to_usd, usd_to_micro
from ..tenants import resolve_tenant
from .engine import request_for

# Answered calls of a field (in one tenant) whose average cost is its expected cost per call.
HISTORY_CALLS = 100


@dataclass
class Estimate:
    """The money side of a bulk regeneration (all amounts in USD)."""

    rows: int = 0
    jobs: int = 0
    worst_case_usd: Decimal = Decimal(0)
    # None: no field in it has history yet (in the rows' tenants).
    expected_usd: Decimal | None = None
    # Fields without history in a tenant (their jobs are not in expected_usd).
    no_history: list[str] = field(default_factory=list)
    # Models without a known price (their worst case is not in worst_case_usd).
    unpriced_models: list[str] = field(default_factory=list)
    # What would refuse how many jobs: {description: jobs}.
    refusals: dict[str, int] = field(default_factory=dict)
    # Jobs that would not be requested at all (their row refuses, e.g. a bad input).
    skipped: int = 0

    @property
    def refused(self) -> int:
        return sum(self.refusals.values())

    def lines(self) -> list[str]:
        """The estimate as sentences, for the command and the admin page."""
        out = [
            _("Worst-case cost: $%(usd)s (input estimate + max_tokens at current prices).")
            % {"usd": self.worst_case_usd}
        ]
        if self.expected_usd is None:
            out.append(_("Expected cost: unknown (no calls of these fields in these tenants yet)."))
        else:
            line = _("Expected cost: $%(usd)s (from each tenant's recent cost per call).") % {
                "usd": self.expected_usd
            }
            if self.no_history:
                line += " " + _("Without history, not included: %(fields)s.") % {
                    "fields": ", ".join(self.no_history)
                }
            out.append(line)
        if self.unpriced_models:
            out.append(
                _("No known price for %(models)s: refused under a cost limit, else unknown cost.")
                % {"models": ", ".join(self.unpriced_models)}
            )
        if self.refusals:
            detail = "; ".join(f"{what}: {n}" for what, n in sorted(self.refusals.items()))
            out.append(
                _("Quotas and budgets would refuse %(jobs)d job(s): %(detail)s.")
                % {"jobs": self.refused, "detail": detail}
            )
        else:
            out.append(_("No quota or budget would refuse a job."))
        return out


class Limits:
    """What is left of each quota and budget, spent job by job as the workers would."""

    def __init__(self) -> None:
        self.quotas: dict[str, list[Any]] = {}
        self.left: dict[tuple[str, str, str, str], int] = {}

    def quotas_of(self, tenant: str) -> list[Any]:
        if tenant not in self.quotas:
            self.quotas[tenant] = quotas.applicable_quotas(tenant)
        return self.quotas[tenant]

    def remaining(self, tenant: str, scope: str, kind: str, period: str, limit: int) -> int:
        key = (tenant, scope, kind, period)
        if key not in self.left:
            used = (
                QuotaUsage.objects.filter(
                    tenant=tenant,
                    scope=scope,
                    kind=kind,
                    period=period,
                    period_start=quotas.period_start(period),
                )
                .values_list("used", flat=True)
                .first()
                or 0
            )
            self.left[key] = limit - used
        return self.left[key]

    def refusal(
        self, tenant: str, demand: quotas.Demand, budget: quotas.Budget | None
    ) -> str | None:
        """What would refuse this job (and nothing is spent), or None (then it is spent)."""
        checks: list[tuple[tuple[str, str, str, str], int, str]] = []
        for quota in self.quotas_of(tenant):
            key = (tenant, "", quota.kind, quota.period)
            limit = quotas.limit_units(quota.kind, quota.limit)
            what = _("%(kind)s quota per %(period)s of tenant %(tenant)s") % {
                "kind": quota.kind,
                "period": quota.period,
                "tenant": tenant or "-",
            }
            if quota.kind == QuotaKind.COST_USD and demand.cost_micro is None:
                return what
            checks.append((key, demand.units(quota.kind), what))
            self.remaining(*key, limit)
        if budget is not None:
            key = (tenant, budget.scope, QuotaKind.COST_USD, QuotaPeriod.MONTH)
            what = _("budget of %(scope)s for tenant %(tenant)s") % {
                "scope": budget.scope.removeprefix("budget:"),
                "tenant": tenant or "-",
            }
            if demand.cost_micro is None:
                return what
            checks.append((key, demand.units(QuotaKind.COST_USD), what))
            self.remaining(*key, usd_to_micro(budget.limit_usd))
        for key, units, what in checks:
            if units > self.left[key]:
                return what
        for key, units, _what in checks:
            self.left[key] -= units
        return None


def expected_per_call(field: AIFieldMixin, tenant: str) -> Decimal | None:
    """The field's average cost over its recent answered, priced calls in ``tenant``."""
    content_type = ContentType.objects.get_for_model(field.model)
    recent = (
        AIUsage.objects.filter(
            tenant=tenant,
            job__content_type=content_type,
            job__field_name=field.name,
            success=True,
            cache_hit=False,
            cost_usd__isnull=False,
        )
        .order_by("-pk")
        .values_list("pk", flat=True)[:HISTORY_CALLS]
    )
    average = AIUsage.objects.filter(pk__in=list(recent)).aggregate(avg=Avg("cost_usd"))["avg"]
    return None if average is None else Decimal(average)


def estimate_pairs(pairs: Iterable[tuple[models.Model, AIFieldMixin]]) -> Estimate:
    """Estimate regenerating each (row, AI field) pair."""
    result = Estimate()
    limits = Limits()
    worst_micro = Decimal(0)
    jobs_per_field: Counter[tuple[AIFieldMixin, str]] = Counter()
    unpriced: set[str] = set()
    rows: set[tuple[str, Any]] = set()
    for row, ai_field in pairs:
        rows.add((row._meta.label, row.pk))
        demand, budget, tenant = demand_of(row, ai_field)
        if demand is None:
            result.skipped += 1
            continue
        result.jobs += 1
        jobs_per_field[ai_field, tenant] += 1
        if demand.cost_micro is None:
            unpriced.add(demand.model)
        else:
            worst_micro += demand.cost_micro
        refused_by = limits.refusal(tenant, demand, budget)
        if refused_by is not None:
            result.refusals[refused_by] = result.refusals.get(refused_by, 0) + 1
    result.rows = len(rows)
    result.worst_case_usd = micro_to_usd(worst_micro)
    result.unpriced_models = sorted(unpriced)
    add_expected(result, jobs_per_field)
    return result


def add_expected(result: Estimate, jobs_per_field: Counter[tuple[AIFieldMixin, str]]) -> None:
    """Each (field, tenant)'s jobs at that tenant's own average cost per call."""
    expected = None
    for (ai_field, tenant), jobs in jobs_per_field.items():
        per_call = expected_per_call(ai_field, tenant)
        if per_call is None:
            name = f"{ai_field.model._meta.label}.{ai_field.name}"
            result.no_history.append(f"{name} (tenant {tenant})" if tenant else name)
            continue
        expected = (expected or Decimal(0)) + per_call * jobs
    if expected is not None:
        result.expected_usd = micro_to_usd(expected * ONE_MILLION)


def demand_of(
    row: models.Model, ai_field: AIFieldMixin
) -> tuple[quotas.Demand | None, quotas.Budget | None, str]:
    """(worst case, budget, tenant) of the job regenerating this field of this row;
    (None, None, tenant) when the row would refuse it at PREP."""
    tenant = resolve_tenant(row)
    content_type = ContentType.objects.get_for_model(row)
    function = FieldGeneration(content_type, row_keys.key_of(row), ai_field.name)
    data = RowData(row, ai_field.trigger_values(row), tenant)
    try:
        prepared = request_for(function, data, tenant)
    except (Cancelled, ValueError):
        return None, None, tenant
    return worst_case(prepared), function.budget(), tenant
