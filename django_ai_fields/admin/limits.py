"""Quotas (with this period's use as a bar) and tenant policies: the operator's to
change; a tenant-bound user may look."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import models
from django.db.models import Case, OuterRef, Subquery, Value, When
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from import_export.admin import ImportExportMixin

from ..models import Quota, QuotaKind, QuotaPeriod, QuotaUsage, TenantPolicy
from ..money.quotas import limit_units, period_start
from . import charts
from .charts import CHART_MEDIA
from .resources import QuotaResource
from .tenant_access import OperatorOnlyChangesMixin, TenantScopedAdminMixin

__all__ = ["QuotaAdmin", "TenantPolicyAdmin"]


@admin.register(Quota)
class QuotaAdmin(
    TenantScopedAdminMixin, OperatorOnlyChangesMixin, ImportExportMixin, admin.ModelAdmin
):
    """Tenant-bound users see their quotas but cannot change them."""

    resource_classes = [QuotaResource]
    list_display = ("tenant_label", "kind", "period", "limit", "is_unlimited", "used_now")
    list_filter = ("kind", "period", "is_unlimited")
    search_fields = ("tenant",)

    def get_queryset(self, request: HttpRequest) -> models.QuerySet[Quota]:
        usage = QuotaUsage.objects.filter(
            tenant=OuterRef("tenant"),
            scope="",
            kind=OuterRef("kind"),
            period=OuterRef("period"),
            period_start=Case(
                When(period=QuotaPeriod.MONTH, then=Value(period_start(QuotaPeriod.MONTH))),
                default=Value(period_start(QuotaPeriod.DAY)),
            ),
        )
        used = Subquery(usage.values("used")[:1])
        return super().get_queryset(request).annotate(used=used)

    @admin.display(description=_("tenant"), ordering="tenant")
    def tenant_label(self, quota: Quota) -> str:
        return quota.tenant or str(_("(default for all tenants)"))

    @admin.display(description=_("used this period"))
    def used_now(self, quota: Quota) -> str:
        if not quota.tenant:
            return str(_("per tenant"))
        used = getattr(quota, "used", None) or 0
        # Cost usage is counted in micro-dollars.
        text = f"{used / 1_000_000:.6f}" if quota.kind == QuotaKind.COST_USD else str(used)
        if quota.is_unlimited:
            return text
        limit = limit_units(quota.kind, quota.limit)
        limit_text = f"{quota.limit:.6f}" if quota.kind == QuotaKind.COST_USD else str(limit)
        return charts.quota_bar(used, limit, f"{text} / {limit_text}")

    @property
    def media(self) -> Any:
        return super().media + CHART_MEDIA

    def has_import_permission(self, request: HttpRequest) -> bool:
        return (
            self.has_add_permission(request)
            and self.has_change_permission(request)
            and super().has_import_permission(request)
        )

    def has_export_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request) and super().has_export_permission(request)


@admin.register(TenantPolicy)
class TenantPolicyAdmin(TenantScopedAdminMixin, OperatorOnlyChangesMixin, admin.ModelAdmin):
    """Switching AI off, capping concurrency or redaction is the operator's decision."""

    list_display = ("tenant", "ai_enabled", "disabled_reason", "max_concurrent_jobs", "redact_pii")
    list_filter = ("ai_enabled", "redact_pii")
    search_fields = ("tenant",)
