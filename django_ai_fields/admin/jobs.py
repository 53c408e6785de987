"""The AI jobs admin: the list with its actions (retry, cancel, regenerate) and the
read-only job page with its calls."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import quote
from django.db import models
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timesince
from django.utils.translation import gettext_lazy as _

from ..fields import get_ai_field
from ..jobs import actions as job_actions
from ..models import FIELD_FUNCTION, UNFINISHED_STATUSES, AIJob, AIUsage, Status
from ..tenants import moved_away
from .job_changelist import JobModelFilter, JobPaginator, JobTenantFilter
from .mixins import STATUS_MEDIA, confirmation_page, refused_outside_tenant
from .resources import USAGE_CALL_COLUMNS
from .stuck import StuckFilter
from .tenant_access import TenantScopedAdminMixin, user_tenant

__all__ = ["AIJobAdmin", "job_targets"]

# The job's fields that hold what it read from its row (prompt, answer).
ROW_CONTENT = ("prompt_text", "output_text")

SKIP_REASONS = {
    job_actions.INVALID_STATE: _("not in a state that allows it"),
    job_actions.OPEN_JOB_EXISTS: _("another job for the same row and field is open"),
    job_actions.RETRY_LIMITED: _("retried too often (RETRY_COOLDOWN, MAX_RETRIES_PER_HOUR)"),
    job_actions.ROW_MOVED: _("the row belongs to another tenant now"),
}


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
    list_filter = (
        "status",
        StuckFilter,
        ("tenant", JobTenantFilter),
        ("model", JobModelFilter),
        "error_code",
    )
    # A capped count and filter choices from small tables (job_changelist.py).
    paginator = JobPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
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

    def get_fieldsets(self, request: HttpRequest, obj: AIJob | None = None) -> Any:
        """Without the prompt and the answer when a tenant-bound user's job reads a row
        that belongs to another tenant now: those are that tenant's to see."""
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None or not moved_away(obj, user_tenant(request)):
            return fieldsets
        return [
            (name, {**options, "fields": [f for f in options["fields"] if f not in ROW_CONTENT]})
            for name, options in fieldsets
        ]

    @admin.display(description=_("rendered prompt"))
    def prompt_text(self, job: AIJob) -> str:
        return format_html("<pre>{}</pre>", job.prompt) if job.prompt else "-"

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

    @admin.display(description=_("output"))
    def output_text(self, job: AIJob) -> str:
        if job.output is None:
            return "-"
        text = job.output if isinstance(job.output, str) else json.dumps(job.output, indent=2)
        return format_html("<pre>{}</pre>", text)

    @admin.action(description=_("Retry selected jobs"), permissions=["change"])
    def retry_jobs(self, request: HttpRequest, queryset: models.QuerySet[AIJob]) -> None:
        result = job_actions.apply("retry", queryset, user_tenant(request))
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
