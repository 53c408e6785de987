"""The admin's *Review AI proposals* page: answers waiting for a person (``review=True``).

A list of the proposals, each beside its row's current value, with bulk *Accept* and
*Reject*; a proposal's page shows both and takes an edited value. Scoped to the
user's tenant like the app's other pages; accepting writes a row, so it also needs
the *change* permission of the row's model.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import models
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.text import Truncator
from django.utils.timesince import timesince
from django.utils.translation import gettext_lazy as _

from .. import row_keys
from ..fields import AIFieldMixin, AIGeneratedJSONField, get_ai_field
from ..models import FIELD_FUNCTION, AIJob, AIProposal, Status
from ..tenants.permissions import has_model_perm
from ..values import review
from .mixins import STATUS_MEDIA
from .tenant_access import TenantScopedAdminMixin

# The attribute holding a proposal's row's current value, loaded for a whole page.
CURRENT_ATTR = "_ai_current_value"
MISSING = object()
SHORT = 200  # characters of a value in the list


@admin.register(AIProposal)
class AIProposalAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    list_display = ("target", "field_name", "current_value", "proposal", "tenant", "waiting")
    list_display_links = None
    list_filter = ("field_name", "tenant")
    search_fields = ("object_id", "field_name", "tenant")
    list_select_related = ("content_type",)
    ordering = ("pk",)  # oldest first: a queue
    actions = ("accept_proposals", "reject_proposals")
    change_form_template = "admin/django_ai_fields/aiproposal/review.html"

    def get_queryset(self, request: HttpRequest) -> models.QuerySet[Any]:
        return (
            super()
            .get_queryset(request)
            .filter(status=Status.IN_REVIEW, function=FIELD_FUNCTION)
            .defer("steps", "payload", "partial_output")
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @property
    def media(self) -> Any:
        return super().media + STATUS_MEDIA

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        context = {"title": _("Review AI proposals"), **(extra_context or {})}
        return super().changelist_view(request, context)

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type:
        base = super().get_changelist(request, **kwargs)

        class ProposalChangeList(base):  # type: ignore[misc,valid-type]
            def get_results(self, request: HttpRequest) -> None:
                super().get_results(request)
                with_current_values(self.result_list)  # one query per model on the page

        return ProposalChangeList

    # -- columns ------------------------------------------------------------------

    @admin.display(description=_("row"))
    def target(self, job: AIJob) -> str:
        ct = job.content_type
        label = f"{ct.app_label}.{ct.model} #{job.object_id}" if ct else job.function
        url = reverse(f"{self.admin_site.name}:django_ai_fields_aiproposal_change", args=[job.pk])
        return format_html('<a href="{}">{}</a>', url, label)

    @admin.display(description=_("current value"))
    def current_value(self, job: AIJob) -> str:
        value = getattr(job, CURRENT_ATTR, MISSING)
        if value is MISSING:
            value = current_values([job]).get(job.pk)
        return format_html('<span class="ai-current">{}</span>', short(value))

    @admin.display(description=_("proposal"))
    def proposal(self, job: AIJob) -> str:
        return format_html('<span class="ai-proposal">{}</span>', short(job.output))

    @admin.display(description=_("waiting"), ordering="updated_at")
    def waiting(self, job: AIJob) -> str:
        return timesince(job.updated_at)

    # -- bulk actions ---------------------------------------------------------------

    @admin.action(description=_("Accept selected proposals"), permissions=["change"])
    def accept_proposals(self, request: HttpRequest, queryset: models.QuerySet[AIJob]) -> None:
        allowed, refused = self.writable(request, queryset)
        outcome = review.accept_many(allowed, request.user)
        outcome.refused.update(refused)
        self.report(request, outcome, _("%(count)d proposal(s) accepted and written."))

    @admin.action(description=_("Reject selected proposals"), permissions=["change"])
    def reject_proposals(self, request: HttpRequest, queryset: models.QuerySet[AIJob]) -> None:
        allowed, refused = self.writable(request, queryset)
        outcome = review.reject_many(allowed, request.user)
        outcome.refused.update(refused)
        self.report(request, outcome, _("%(count)d proposal(s) rejected."))

    def writable(
        self, request: HttpRequest, queryset: models.QuerySet[AIJob]
    ) -> tuple[list[AIJob], dict[int, str]]:
        """The proposals whose row the user may change, and why the others are left."""
        allowed, refused = [], {}
        for job in queryset.select_related("content_type"):
            model = job.content_type.model_class() if job.content_type else None
            if model is not None and has_model_perm(request.user, "change", model):
                allowed.append(job)
            else:
                refused[job.pk] = str(NO_ROW_PERMISSION)
        return allowed, refused

    def report(self, request: HttpRequest, outcome: review.Outcome, done: Any) -> None:
        if outcome.done:
            self.message_user(request, done % {"count": len(outcome.done)}, messages.SUCCESS)
        for pk, reason in sorted(outcome.refused.items()):
            self.message_user(
                request,
                _("Proposal #%(id)s: %(reason)s") % {"id": pk, "reason": reason},
                messages.WARNING,
            )

    # -- one proposal: its page, with an edited value -----------------------------------

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        job = self.get_object(request, object_id)
        if job is None or not self.has_view_or_change_permission(request, job):
            self.message_user(request, NOT_WAITING % {"id": object_id}, messages.WARNING)
            return self.back_to_list()
        field = proposal_field(job)
        text = value_text(job.output, field)
        error = ""
        if request.method == "POST":
            if (
                not self.has_change_permission(request, job)
                or not self.writable(request, self.get_queryset(request).filter(pk=job.pk))[0]
            ):
                self.message_user(request, NO_ROW_PERMISSION, messages.ERROR)
                return self.back_to_list()
            try:
                return self.decide(request, job, text)
            except ValidationError as exc:
                error = " ".join(exc.messages)
                text = request.POST.get("value", "")
        context = {
            **self.admin_site.each_context(request),
            "title": _("Review AI proposal"),
            "opts": self.opts,
            "job": job,
            "field": field,
            "row": self.target(job),
            "current": value_text(current_values([job]).get(job.pk), field),
            "proposal": value_text(job.output, field),
            "value": text,
            "error": error,
            "choices": field.choice_values() if field is not None else None,
            "can_change": self.has_change_permission(request, job),
            "media": self.media,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.change_form_template, context)

    def decide(self, request: HttpRequest, job: AIJob, proposal_text: str) -> HttpResponse:
        """Accept (the value as edited) or reject; raises ValidationError for a bad value."""
        try:
            if "_reject" in request.POST:
                review.reject(job, request.user)
                self.message_user(request, _("The proposal was rejected."), messages.SUCCESS)
            else:
                # Browsers send a textarea's line breaks as CRLF.
                edited = request.POST.get("value", proposal_text).replace("\r\n", "\n")
                value = review.UNSET if edited == proposal_text else edited
                review.accept(job, request.user, value)
                self.message_user(request, _("The value was written."), messages.SUCCESS)
        except review.ReviewError as exc:
            self.message_user(request, str(exc), messages.ERROR)
        return self.back_to_list()

    def back_to_list(self) -> HttpResponseRedirect:
        return HttpResponseRedirect(
            reverse(f"{self.admin_site.name}:django_ai_fields_aiproposal_changelist")
        )


NO_ROW_PERMISSION = _("you may not change rows of its model")
NOT_WAITING = _("No AI proposal #%(id)s waits for your review.")


def proposal_field(job: AIJob) -> AIFieldMixin | None:
    model = job.content_type.model_class() if job.content_type else None
    try:
        return get_ai_field(model, job.field_name) if model is not None else None
    except (LookupError, ValueError):
        return None


def attname_of(model: type[models.Model], field_name: str) -> str:
    """The column of an AI field ("" when the model has it no longer)."""
    try:
        return get_ai_field(model, field_name).attname
    except (LookupError, ValueError):
        return ""


def value_text(value: Any, field: AIFieldMixin | None) -> str:
    """A value as the review form shows and takes it: JSON fields as JSON text."""
    if value is None:
        return ""
    if isinstance(field, AIGeneratedJSONField) or not isinstance(value, str):
        return json.dumps(value, indent=2, ensure_ascii=False)
    return value


def short(value: Any) -> str:
    if value is None or value == "":
        return "-"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return Truncator(text).chars(SHORT)


def with_current_values(jobs: list[AIJob]) -> None:
    values = current_values(jobs)
    for job in jobs:
        setattr(job, CURRENT_ATTR, values.get(job.pk))


def current_values(jobs: list[AIJob]) -> dict[int, Any]:
    """Each proposal's row's current value of its field: one query per model."""
    wanted: dict[type[models.Model], list[AIJob]] = defaultdict(list)
    for job in jobs:
        model = job.content_type.model_class() if job.content_type else None
        if model is not None:
            wanted[model].append(job)
    values: dict[int, Any] = {}
    for model, model_jobs in wanted.items():
        attnames = {job.field_name: attname_of(model, job.field_name) for job in model_jobs}
        ids = {job.object_id for job in model_jobs}
        rows = model._base_manager.filter(row_keys.pks_filter(model, ids))
        columns = sorted({a for a in attnames.values() if a})
        by_key = {row_keys.key_of(row): row for row in (rows.only(*columns) if columns else rows)}
        for job in model_jobs:
            row, attname = by_key.get(job.object_id), attnames[job.field_name]
            if row is not None and attname:
                values[job.pk] = getattr(row, attname)
    return values


__all__ = ["AIProposalAdmin"]
