"""Admin mixins: ``AIFieldsAdminMixin`` for users' ModelAdmins, and tenant scoping
for the app's own admin pages."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db import models, transaction
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from ..fields import AIFieldMixin, ai_fields_of
from ..status import with_ai_status
from ..templatetags.ai_fields import render_badge
from ..tenants import resolve_tenant
from ..tenants.permissions import NoTenant, scope_or_empty, tenant_for_user

STATUS_MEDIA = forms.Media(
    css={"all": ["django_ai_fields/status.css"]}, js=["django_ai_fields/status.js"]
)


def regenerate_action(field: AIFieldMixin | None) -> Callable[..., TemplateResponse | None]:
    """An admin action regenerating one AI field (or all, for ``None``) of the selected rows."""

    def action(
        modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: models.QuerySet[Any]
    ) -> TemplateResponse | None:
        from ..api import estimate, regenerate

        name = field.name if field is not None else None
        rows = list(queryset)
        if refused_outside_tenant(modeladmin, request, rows):
            return None
        if request.POST.get("confirm") != "yes":  # first the cost, then the jobs
            return confirmation_page(
                modeladmin, request, queryset, action.__name__, estimate(queryset, name)
            )
        jobs = 0
        with transaction.atomic():  # every job is enqueued when this commits
            for obj in rows:
                result = regenerate(obj, name, triggered_by="admin")
                jobs += len(result) if isinstance(result, list) else 1
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
        return None  # back to the changelist

    if field is None:
        action.__name__ = "regenerate_ai_fields"
        description: Any = _("Regenerate AI fields")
    else:
        action.__name__ = f"regenerate_ai_field_{field.name}"
        description = format_lazy(_("Regenerate AI field “{}”"), field.verbose_name)
    return admin.action(description=description, permissions=["change"])(action)


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
) -> TemplateResponse:
    """The cost estimate of a regeneration, with a button that enqueues it."""
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

    model: type[models.Model]

    def __init__(self, model: type[models.Model], admin_site: admin.AdminSite) -> None:
        super().__init__(model, admin_site)  # type: ignore[call-arg]
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


class TenantScopedAdminMixin:
    """Confines the app's admin pages to the user's tenant (``TENANT_FOR_USER``)."""

    tenant_field = "tenant"

    def get_queryset(self, request: HttpRequest) -> models.QuerySet[Any]:
        queryset = super().get_queryset(request)  # type: ignore[misc]
        return scope_or_empty(queryset, request.user, self.tenant_field)
