"""``AIFieldsAdminMixin``: AI columns, filters, actions and history for users' ModelAdmins."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db import models, transaction
from django.http import HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from ..fields import AIFieldMixin, ai_fields_of
from ..models import AIJob
from ..status import with_ai_status
from ..templatetags.ai_fields import render_badge
from ..tenants import resolve_tenant
from ..tenants.permissions import NoTenant, tenant_for_user
from ..values import states
from ..values.history import RevertRefused

STATUS_MEDIA = forms.Media(
    css={"all": ["django_ai_fields/status.css"]}, js=["django_ai_fields/status.js"]
)


def regenerate_action(field: AIFieldMixin | None) -> Callable[..., TemplateResponse | None]:
    """An admin action regenerating one AI field (or all, for ``None``) of the selected
    rows; on its confirmation page, optionally only their stale values."""

    def action(
        modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: models.QuerySet[Any]
    ) -> TemplateResponse | None:
        from ..api import estimate
        from ..jobs.estimates import estimate_pairs

        fields = [field] if field is not None else ai_fields_of(queryset.model)
        rows = list(queryset)
        if refused_outside_tenant(modeladmin, request, rows):
            return None
        name = field.name if field is not None else None
        only_stale = request.POST.get("only_stale") == "yes"
        pairs = stale_pairs(queryset, rows, fields) if only_stale else None
        if request.POST.get("confirm") != "yes":  # first the cost, then the jobs
            cost = estimate(queryset, name) if pairs is None else estimate_pairs(pairs)
            stale = len(pairs) if pairs is not None else count_stale(queryset, fields)
            return confirmation_page(
                modeladmin,
                request,
                queryset,
                action.__name__,
                cost,
                stale_values=stale,
                only_stale=only_stale,
            )
        requests: list[tuple[models.Model, str | None]] = (
            [(obj, name) for obj in rows]
            if pairs is None
            else [(obj, ai_field.name) for obj, ai_field in pairs]
        )
        report_requested(modeladmin, request, regenerate_all(requests))
        return None  # back to the changelist

    return named_action(action, field)


def named_action(action: Callable[..., Any], field: AIFieldMixin | None) -> Callable[..., Any]:
    """The regenerate action named and described for its field (or for all of them)."""
    if field is None:
        action.__name__ = "regenerate_ai_fields"
        description: Any = _("Regenerate AI fields")
    else:
        action.__name__ = f"regenerate_ai_field_{field.name}"
        description = format_lazy(_("Regenerate AI field “{}”"), field.verbose_name)
    return admin.action(description=description, permissions=["change"])(action)


def regenerate_all(requests: list[tuple[models.Model, str | None]]) -> int:
    """Regenerate each (row, field name or None for all) in one transaction (every job
    is enqueued when it commits); how many jobs were requested."""
    from ..api import regenerate

    jobs = 0
    with transaction.atomic():
        for obj, field_name in requests:
            result = regenerate(obj, field_name, triggered_by="admin")
            jobs += len(result) if isinstance(result, list) else 1
    return jobs


def report_requested(modeladmin: admin.ModelAdmin, request: HttpRequest, jobs: int) -> None:
    modeladmin.message_user(
        request,
        ngettext(
            "%(jobs)d AI job requested; the values update when it has run.",
            "%(jobs)d AI jobs requested; the values update when they have run.",
            jobs,
        )
        % {"jobs": jobs},
        messages.SUCCESS,
    )


def stale_pairs(
    queryset: models.QuerySet[Any], rows: list[models.Model], fields: list[AIFieldMixin]
) -> list[tuple[models.Model, AIFieldMixin]]:
    """(row, field) of the selected rows' stale values (one query per field)."""
    stale = {
        f: set(states.rows_in_state(queryset, f, states.STALE).values_list("pk", flat=True))
        for f in fields
    }
    return [(row, f) for row in rows for f in fields if row.pk in stale[f]]


def count_stale(queryset: models.QuerySet[Any], fields: list[AIFieldMixin]) -> int:
    return sum(states.rows_in_state(queryset, f, states.STALE).count() for f in fields)


def refused_outside_tenant(
    modeladmin: admin.ModelAdmin, request: HttpRequest, rows: list[models.Model]
) -> bool:
    """True (with an error message) when a tenant-bound user selected rows of another
    tenant: nothing is regenerated then (the mixin's action and the job admin's)."""
    outside = rows_outside_tenant(request, rows)
    if outside:
        modeladmin.message_user(
            request,
            ngettext(
                "%(rows)d selected row belongs to another tenant: no AI jobs were requested.",
                "%(rows)d selected rows belong to another tenant: no AI jobs were requested.",
                outside,
            )
            % {"rows": outside},
            messages.ERROR,
        )
    return bool(outside)


def rows_outside_tenant(request: HttpRequest, rows: list[models.Model]) -> int:
    """How many rows a tenant-bound user (TENANT_FOR_USER) may not regenerate: those
    TENANT_RESOLVER puts in another tenant (all of them for a user of no tenant)."""
    try:
        tenant = tenant_for_user(request.user)
    except NoTenant:
        return len(rows)
    if tenant is None:
        return 0
    return sum(1 for row in rows if resolve_tenant(row) != tenant)


def confirmation_page(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: Any,
    action_name: str,
    cost: Any,
    *,
    stale_values: int | None = None,
    only_stale: bool = False,
) -> TemplateResponse:
    """The cost estimate of a regeneration, with a button that enqueues it (and, given
    ``stale_values``, one that estimates regenerating only the stale values)."""
    opts = modeladmin.model._meta
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": _("Regenerate AI fields: cost estimate"),
        "opts": opts,
        "queryset": queryset,
        "estimate": cost,
        "estimate_lines": cost.lines(),
        "action_name": action_name,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "media": modeladmin.media,
        "stale_values": stale_values,
        "only_stale": only_stale,
    }
    request.current_app = modeladmin.admin_site.name
    return TemplateResponse(request, "admin/django_ai_fields/regenerate_confirmation.html", context)


def status_column(field: AIFieldMixin) -> Callable[[models.Model], str]:
    def column(obj: models.Model) -> str:
        return render_badge(obj, field.name)

    column.__name__ = f"ai_status_{field.name}"
    description = format_lazy(_("{} status"), field.verbose_name)
    return admin.display(description=description)(column)


class AIFieldsAdminMixin:
    """Add to a ModelAdmin of a model with AI fields::

        class LeadAdmin(AIFieldsAdminMixin, admin.ModelAdmin): ...

    It adds the action *Regenerate AI fields* (and one per field), allowed to users
    with the model's change permission, and a status badge column per AI field.
    The list page loads every badge's status in one query.
    """

    #: AI fields that get a status column: True (all), False (none) or a list of names.
    ai_status_columns: bool | Sequence[str] = True
    #: Besides "Regenerate AI fields", one action per field (when there are several).
    ai_field_actions: bool = True
    #: A list filter "AI value" (current, stale, empty, in review, failed, edited by
    #: hand) per AI field: True (all), False (none) or a list of names.
    ai_value_filters: bool | Sequence[str] = True
    #: The change page lists each AI field's earlier values (api.history), this many.
    ai_history_limit: int = 10

    model: type[models.Model]

    def __init__(self, model: type[models.Model], admin_site: admin.AdminSite) -> None:
        super().__init__(model, admin_site)  # type: ignore[call-arg]
        if getattr(self, "change_form_template", None) is None:  # a project's own wins
            self.change_form_template = HISTORY_TEMPLATE
        fields = ai_fields_of(model)
        actions: list[Any] = [*(getattr(self, "actions", None) or []), regenerate_action(None)]
        if self.ai_field_actions and len(fields) > 1:
            actions += [regenerate_action(field) for field in fields]
        self.actions = actions

    def ai_status_fields(self) -> list[AIFieldMixin]:
        fields = ai_fields_of(self.model)
        if self.ai_status_columns is True:
            return fields
        if not self.ai_status_columns:
            return []
        wanted = set(self.ai_status_columns)
        return [field for field in fields if field.name in wanted]

    def get_list_filter(self, request: HttpRequest) -> Sequence[Any]:
        base = super().get_list_filter(request)  # type: ignore[misc]
        fields = ai_fields_of(self.model)
        if self.ai_value_filters is not True:
            wanted = set(self.ai_value_filters or ())
            fields = [field for field in fields if field.name in wanted]
        return [*base, *(value_filter(field, len(fields) > 1) for field in fields)]

    def get_list_display(self, request: HttpRequest) -> Sequence[Any]:
        base = super().get_list_display(request)  # type: ignore[misc]
        return [*base, *(status_column(field) for field in self.ai_status_fields())]

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type:
        base = super().get_changelist(request, **kwargs)  # type: ignore[misc]
        names = [field.name for field in self.ai_status_fields()]
        if not names:
            return base

        class AIStatusChangeList(base):  # type: ignore[misc,valid-type]
            def get_results(self, request: HttpRequest) -> None:
                super().get_results(request)
                with_ai_status(self.result_list, names)  # one query for the whole page

        return AIStatusChangeList

    @property
    def media(self) -> forms.Media:
        return super().media + STATUS_MEDIA  # type: ignore[misc]

    # -- the change page: each AI field's earlier values, with a revert -------------------

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> Any:
        from ..api import history

        obj = self.get_object(request, object_id)  # type: ignore[attr-defined]
        context = dict(extra_context or {})
        if obj is not None:
            context["ai_history"] = [
                (field, history(obj, field, self.ai_history_limit))
                for field in ai_fields_of(self.model)
            ]
            context["ai_revert_url"] = reverse(
                f"{self.admin_site.name}:{admin_url_name(self.model)}_ai_revert",  # type: ignore[attr-defined]
                args=[object_id],
            )
        return super().change_view(request, object_id, form_url, context)  # type: ignore[misc]

    def get_urls(self) -> list[Any]:
        revert = self.admin_site.admin_view(self.ai_revert_view)  # type: ignore[attr-defined]
        name = f"{admin_url_name(self.model)}_ai_revert"
        return [
            path("<path:object_id>/ai-revert/", revert, name=name),
            *super().get_urls(),  # type: ignore[misc]
        ]

    def ai_revert_view(self, request: HttpRequest, object_id: str) -> HttpResponseRedirect:
        """POST field and job: write that earlier value back (api.revert)."""
        from ..api import revert

        obj = self.get_object(request, object_id)  # type: ignore[attr-defined]
        if request.method != "POST" or obj is None:
            raise PermissionDenied
        if not self.has_change_permission(request, obj):  # type: ignore[attr-defined]
            raise PermissionDenied
        change_url = reverse(
            f"{self.admin_site.name}:{admin_url_name(self.model)}_change",  # type: ignore[attr-defined]
            args=[object_id],
        )
        if refused_outside_tenant(self, request, [obj]):  # type: ignore[arg-type]
            return HttpResponseRedirect(change_url)
        field = next(
            (f for f in ai_fields_of(self.model) if f.name == request.POST.get("field")), None
        )
        job_id = request.POST.get("job", "")
        job = AIJob.objects.filter(pk=int(job_id)).first() if job_id.isdigit() else None
        if field is None or job is None:
            raise PermissionDenied
        try:
            revert(obj, field, job)
        except RevertRefused as exc:
            self.message_user(request, str(exc), messages.ERROR)  # type: ignore[attr-defined]
        else:
            self.message_user(  # type: ignore[attr-defined]
                request,
                format_lazy(
                    _("“{}” holds the value of AI job #{} again."), field.verbose_name, job.pk
                ),
                messages.SUCCESS,
            )
        return HttpResponseRedirect(change_url)


HISTORY_TEMPLATE = "admin/django_ai_fields/change_form_with_history.html"


def admin_url_name(model: type[models.Model]) -> str:
    return f"{model._meta.app_label}_{model._meta.model_name}"


def value_filter(field: AIFieldMixin, name_it: bool) -> type[admin.SimpleListFilter]:
    """The list filter "AI value" of one field (values/states.py): one condition on
    the list's query, no query of its own."""

    class AIValueFilter(admin.SimpleListFilter):
        title = format_lazy(_("AI value: {}"), field.verbose_name) if name_it else _("AI value")
        parameter_name = f"ai_value_{field.name}"

        def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
            return list(states.LABELS.items())

        def queryset(self, request: HttpRequest, queryset: models.QuerySet[Any]) -> Any:
            if self.value() in states.LABELS:
                return states.rows_in_state(queryset, field, str(self.value()))
            return queryset

    return AIValueFilter
