"""The AI usage admin: the call log with totals, the spend chart and CSV export, its
counts and filter choices read from the daily roll-up."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from django.contrib import admin
from django.http import HttpRequest, HttpResponse, QueryDict
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from import_export.admin import ExportMixin

from ..models import AIUsage
from ..observability import analytics
from . import charts, usage_changelist
from .charts import CHART_MEDIA
from .resources import USAGE_CALL_COLUMNS, AIUsageResource
from .tenant_access import TenantScopedAdminMixin
from .usage_changelist import RolledUpValuesFilter, UsagePaginator

if TYPE_CHECKING:
    from django.http.request import _ImmutableQueryDict

__all__ = ["AIUsageAdmin"]


@admin.register(AIUsage)
class AIUsageAdmin(TenantScopedAdminMixin, ExportMixin, admin.ModelAdmin):
    resource_classes = [AIUsageResource]
    change_list_template = "admin/django_ai_fields/aiusage/change_list.html"
    date_hierarchy = "created_at"
    # Counts, filter choices and dates come from the daily roll-up, not the call log.
    paginator = UsagePaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER

    @property
    def media(self) -> Any:
        return super().media + CHART_MEDIA

    list_display = ("created_at", "tenant", *USAGE_CALL_COLUMNS, "call_state", "job_link")
    list_filter = (
        "success",
        "cache_hit",
        # "sent, no answer": in flight, or its worker died mid-call (worst case counted).
        "call_state",
        ("provider", RolledUpValuesFilter),
        ("model", RolledUpValuesFilter),
        ("tenant", RolledUpValuesFilter),
        "error_code",
    )
    search_fields = ("tenant", "model", "reported_model", "=job__id")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_export_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request) and super().has_export_permission(request)

    @admin.display(description=_("job"), ordering="job")
    def job_link(self, usage: AIUsage) -> str:
        if usage.job_id is None:
            return "-"
        url = reverse(f"{self.admin_site.name}:django_ai_fields_aijob_change", args=[usage.job_id])
        return format_html('<a href="{}">#{}</a>', url, usage.job_id)

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        chart_by = request.GET.get("chart_by", "model")
        if chart_by not in charts.CHART_GROUPS:
            chart_by = "model"
        if "chart_by" in request.GET:  # ours, not a filter: the changelist must not see it
            request.GET = without_param(request.GET, "chart_by")
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None)
        if context and "cl" in context:
            usage = context["cl"].queryset
            counted = getattr(context["cl"].paginator, "counters", None)
            context["ai_totals"] = (
                analytics.totals_of(counted) if counted else analytics.totals(usage)
            )
            context["ai_chart"] = charts.chart_context(usage, chart_by, request.GET.dict())
            context["ai_dates"] = usage_changelist.date_hierarchy(context["cl"])
        return response


def without_param(query: QueryDict, name: str) -> _ImmutableQueryDict:
    """A copy of ``query`` without ``name``, to stand in for ``request.GET``."""
    params = query.copy()
    del params[name]
    # The stubs type request.GET as immutable (read-only API): nothing mutates it later.
    return cast("_ImmutableQueryDict", params)
