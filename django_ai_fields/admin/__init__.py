"""Admin pages for jobs, usage, quotas and tenant credentials (here).

The submodules: ``mixins`` (``AIFieldsAdminMixin`` for your own ModelAdmins,
importable from here too, and tenant scoping), ``forms`` (the credential form),
``resources`` (import-export) and ``charts`` (the server-rendered SVG charts).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, cast

from django.contrib import admin, messages
from django.contrib.admin.utils import quote
from django.db import models
from django.db.models import Case, OuterRef, Subquery, Value, When
from django.forms import Media
from django.http import HttpRequest, HttpResponse, QueryDict
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timesince
from django.utils.translation import gettext_lazy as _
from import_export.admin import ExportMixin, ImportExportMixin

from ..fields import get_ai_field
from ..jobs import actions as job_actions
from ..models import (
    FIELD_FUNCTION,
    UNFINISHED_STATUSES,
    AIJob,
    AIUsage,
    ProviderCredential,
    Quota,
    QuotaKind,
    QuotaPeriod,
    QuotaUsage,
    Status,
    TenantPolicy,
)
from ..money.quotas import limit_units, period_start
from ..observability import analytics
from ..tenants import moved_away
from ..tenants.permissions import NoTenant, tenant_for_user
from . import charts, usage_changelist
from .forms import ProviderCredentialForm
from .mixins import (
    STATUS_MEDIA,
    AIFieldsAdminMixin,
    TenantScopedAdminMixin,
    confirmation_page,
    refused_outside_tenant,
)
from .resources import USAGE_CALL_COLUMNS, AIUsageResource, QuotaResource
from .review import AIProposalAdmin  # registers "Review AI proposals"
from .stuck import StuckFilter
from .usage_changelist import RolledUpValuesFilter, UsagePaginator

if TYPE_CHECKING:
    from django.http.request import _ImmutableQueryDict

__all__ = [
    "AIFieldsAdminMixin",
    "AIJobAdmin",
    "AIProposalAdmin",
    "AIUsageAdmin",
    "ProviderCredentialAdmin",
    "QuotaAdmin",
]

# The job's fields that hold what it read from its row (prompt, answer).
ROW_CONTENT = ("prompt_text", "output_text")
CHART_MEDIA = Media(css={"all": ["django_ai_fields/charts.css"]})

SKIP_REASONS = {
    job_actions.INVALID_STATE: _("not in a state that allows it"),
    job_actions.OPEN_JOB_EXISTS: _("another job for the same row and field is open"),
    job_actions.RETRY_LIMITED: _("retried too often (RETRY_COOLDOWN, MAX_RETRIES_PER_HOUR)"),
    job_actions.ROW_MOVED: _("the row belongs to another tenant now"),
}


def _user_tenant(request: HttpRequest) -> str | None:
    """The tenant the user is confined to ("" for a user of no tenant); None: all."""
    try:
        return tenant_for_user(request.user)
    except NoTenant:
        return ""


def _tenant_bound(request: HttpRequest) -> bool:
    """True when TENANT_FOR_USER confines this user to one tenant (or to none)."""
    try:
        return tenant_for_user(request.user) is not None
    except NoTenant:
        return True


def _no_tenant(request: HttpRequest) -> bool:
    """True when TENANT_FOR_USER is set and maps this (non-superuser) to no tenant."""
    try:
        tenant_for_user(request.user)
    except NoTenant:
        return True
    return False


class AIUsageInline(admin.TabularInline):
    model = AIUsage
    extra = 0
    can_delete = False
    fields = ("created_at", *USAGE_CALL_COLUMNS)
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AIJob)
class AIJobAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "status_badge",
        "field_name",
        "target",
        "tenant",
        "model",
        "attempts",
        "cost_usd",
        "age",
    )
    list_filter = ("status", StuckFilter, "tenant", "model", "error_code")
    search_fields = ("=id", "object_id", "field_name", "tenant", "model", "error")
    list_select_related = ("content_type",)
    actions = ("retry_jobs", "cancel_jobs", "regenerate_ai_fields")
    inlines = (AIUsageInline,)
    fieldsets = (
        (None, {"fields": ("status", "phase", "progress", "attempts", "error_code", "error")}),
        (
            _("Target"),
            {"fields": ("target", "field_name", "function", "tenant", "triggered_by", "force")},
        ),
        (
            _("Generation"),
            {
                "fields": (
                    "provider",
                    "model",
                    "batch_id",
                    "prompt_text",
                    "output_text",
                    "input_tokens",
                    "output_tokens",
                    "cost_usd",
                    "input_hash",
                )
            },
        ),
        (_("Steps"), {"fields": ("step_log",)}),
        (
            _("Timings"),
            {"fields": ("created_at", "enqueued_at", "started_at", "finished_at", "updated_at")},
        ),
    )
    readonly_fields = (
        "target",
        "prompt_text",
        "output_text",
        "step_log",
        "created_at",
        "updated_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The detail page is read-only for everyone; the list's actions need *change*.
        return obj is None and super().has_change_permission(request)

    @property
    def media(self) -> Any:
        return super().media + STATUS_MEDIA

    @admin.display(description=_("status"), ordering="status")
    def status_badge(self, job: AIJob) -> str:
        progress = f" {job.progress}%" if job.status in UNFINISHED_STATUSES and job.progress else ""
        return format_html(
            '<span class="ai-status ai-status--{}">{}{}</span>',
            job.status,
            Status(job.status).label,
            progress,
        )

    @admin.display(description=_("target"))
    def target(self, job: AIJob) -> str:
        if job.content_type is None:
            return job.function
        ct = job.content_type
        label = f"{ct.app_label}.{ct.model} #{job.object_id}"
        model = ct.model_class()
        if model is None or not self.admin_site.is_registered(model):
            return label
        url = reverse(
            f"{self.admin_site.name}:{ct.app_label}_{ct.model}_change",
            args=[quote(job.object_id)],
        )
        return format_html('<a href="{}">{}</a>', url, label)

    @admin.display(description=_("age"), ordering="created_at")
    def age(self, job: AIJob) -> str:
        return timesince(job.created_at)

    @admin.display(description=_("rendered prompt"))
    def get_fieldsets(self, request: HttpRequest, obj: AIJob | None = None) -> Any:
        """Without the prompt and the answer when a tenant-bound user's job reads a row
        that belongs to another tenant now: those are that tenant's to see."""
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None or not moved_away(obj, _user_tenant(request)):
            return fieldsets
        return [
            (name, {**options, "fields": [f for f in options["fields"] if f not in ROW_CONTENT]})
            for name, options in fieldsets
        ]

    def prompt_text(self, job: AIJob) -> str:
        return format_html("<pre>{}</pre>", job.prompt) if job.prompt else "-"

    @admin.display(description=_("output"))
    @admin.display(description=_("step log"))
    def step_log(self, job: AIJob) -> str:
        if not job.steps:
            return "-"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    step.get("at", "")[11:19],
                    step.get("attempt", ""),
                    step.get("phase", ""),
                    step.get("message", ""),
                )
                for step in job.steps
            ),
        )
        return format_html("<table>{}</table>", rows)

    def output_text(self, job: AIJob) -> str:
        if job.output is None:
            return "-"
        text = job.output if isinstance(job.output, str) else json.dumps(job.output, indent=2)
        return format_html("<pre>{}</pre>", text)

    @admin.action(description=_("Retry selected jobs"), permissions=["change"])
    def retry_jobs(self, request: HttpRequest, queryset: models.QuerySet[AIJob]) -> None:
        result = job_actions.apply("retry", queryset, _user_tenant(request))
        self.report(request, result, _("%(count)d job(s) queued for a new attempt."))

    @admin.action(description=_("Cancel selected jobs"), permissions=["change"])
    def cancel_jobs(self, request: HttpRequest, queryset: models.QuerySet[AIJob]) -> None:
        result = job_actions.apply("cancel", queryset)
        self.report(request, result, _("%(count)d job(s) cancelled."))

    @admin.action(
        description=_("Regenerate AI fields of the selected jobs' rows"), permissions=["change"]
    )
    def regenerate_ai_fields(
        self, request: HttpRequest, queryset: models.QuerySet[AIJob]
    ) -> TemplateResponse | None:
        """Fresh values for the selected field jobs' rows, after the cost estimate."""
        from ..api import regenerate_many
        from ..jobs.estimates import estimate_pairs

        pairs = job_targets(queryset)
        rows = list({(type(row), row.pk): row for row, _field in pairs}.values())
        if refused_outside_tenant(self, request, rows):
            return None
        if request.POST.get("confirm") != "yes":
            cost = estimate_pairs(pairs)
            return confirmation_page(self, request, queryset, "regenerate_ai_fields", cost)
        jobs = regenerate_many(pairs, triggered_by="admin")
        self.message_user(
            request,
            _("%(jobs)d AI job(s) requested; the values update when they have run.")
            % {"jobs": len(jobs)},
            messages.SUCCESS,
        )
        return None

    def report(self, request: HttpRequest, result: job_actions.ActionResult, done: Any) -> None:
        if result.done:
            self.message_user(request, done % {"count": len(result.done)}, messages.SUCCESS)
        for reason in sorted(set(result.skipped.values())):
            ids = sorted(pk for pk, r in result.skipped.items() if r == reason)
            self.message_user(
                request,
                _("Skipped job(s) %(ids)s: %(reason)s.")
                % {"ids": ", ".join(map(str, ids)), "reason": SKIP_REASONS.get(reason, reason)},
                messages.WARNING,
            )


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

    list_display = ("created_at", "tenant", *USAGE_CALL_COLUMNS, "job_link")
    list_filter = (
        "success",
        "cache_hit",
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


def job_targets(jobs: models.QuerySet[AIJob]) -> list[tuple[models.Model, Any]]:
    """(row, AI field) of each field job whose row and field still exist, once each."""
    pairs: dict[tuple[Any, ...], tuple[models.Model, Any]] = {}
    for job in jobs.filter(function=FIELD_FUNCTION).select_related("content_type"):
        row = job.get_target()
        if row is None:
            continue
        try:
            field = get_ai_field(type(row), job.field_name)
        except (LookupError, ValueError):  # FieldDoesNotExist is a LookupError
            continue
        pairs.setdefault((job.content_type_id, job.object_id, job.field_name), (row, field))
    return list(pairs.values())


class OperatorOnlyChangesMixin:
    """Tenant-bound users may look but not add, change or delete."""

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return not _tenant_bound(request) and super().has_add_permission(request, *args)  # type: ignore[misc]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not _tenant_bound(request) and super().has_change_permission(request, obj)  # type: ignore[misc]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not _tenant_bound(request) and super().has_delete_permission(request, obj)  # type: ignore[misc]


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


@admin.register(ProviderCredential)
class ProviderCredentialAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    """The key is write-only: never rendered, not even encrypted."""

    form = ProviderCredentialForm
    list_display = ("tenant", "provider", "base_url", "default_model", "key", "updated_at")
    list_filter = ("provider",)
    search_fields = ("tenant", "provider")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not _no_tenant(request) and super().has_add_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not _no_tenant(request) and super().has_change_permission(request, obj)

    @admin.display(description=_("API key"))
    def key(self, credential: ProviderCredential) -> str:
        if credential.key_is_unreadable:
            return str(_("cannot be decrypted (see ai_status)"))
        return "••••••••" if credential.api_key else str(_("not set"))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        readonly = tuple(super().get_readonly_fields(request, obj))
        return (*readonly, "tenant") if _tenant_bound(request) else readonly

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        """Tell the form whose row it writes and whether TENANT_BASE_URLS applies."""
        form = super().get_form(request, obj, change=change, **kwargs)
        try:
            tenant = tenant_for_user(request.user)
        except NoTenant:
            tenant = None
        limited = _tenant_bound(request) and not request.user.is_superuser
        extra = {"bound_tenant": tenant, "limited_to_allowlist": limited}
        return type(form.__name__, (form,), extra)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        tenant = tenant_for_user(request.user)
        if tenant is not None:
            obj.tenant = tenant  # a tenant-bound user only ever writes its own tenant
        super().save_model(request, obj, form, change)


def without_param(query: QueryDict, name: str) -> _ImmutableQueryDict:
    """A copy of ``query`` without ``name``, to stand in for ``request.GET``."""
    params = query.copy()
    del params[name]
    # The stubs type request.GET as immutable (read-only API): nothing mutates it later.
    return cast("_ImmutableQueryDict", params)
