"""Tenants' provider credentials: the key is write-only; a tenant-bound user edits
only its own tenant's rows, within TENANT_BASE_URLS."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from ..models import ProviderCredential
from ..tenants.permissions import NoTenant, tenant_for_user
from .forms import ProviderCredentialForm
from .tenant_access import TenantScopedAdminMixin, no_tenant, tenant_bound

__all__ = ["ProviderCredentialAdmin"]


@admin.register(ProviderCredential)
class ProviderCredentialAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    """The key is write-only: never rendered, not even encrypted."""

    form = ProviderCredentialForm
    list_display = ("tenant", "provider", "base_url", "default_model", "key", "updated_at")
    list_filter = ("provider",)
    search_fields = ("tenant", "provider")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not no_tenant(request) and super().has_add_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not no_tenant(request) and super().has_change_permission(request, obj)

    @admin.display(description=_("API key"))
    def key(self, credential: ProviderCredential) -> str:
        if credential.key_is_unreadable:
            return str(_("cannot be decrypted (see ai_status)"))
        return "••••••••" if credential.api_key else str(_("not set"))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        readonly = tuple(super().get_readonly_fields(request, obj))
        return (*readonly, "tenant") if tenant_bound(request) else readonly

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        """Tell the form whose row it writes and whether TENANT_BASE_URLS applies."""
        form = super().get_form(request, obj, change=change, **kwargs)
        try:
            tenant = tenant_for_user(request.user)
        except NoTenant:
            tenant = None
        limited = tenant_bound(request) and not request.user.is_superuser
        extra = {"bound_tenant": tenant, "limited_to_allowlist": limited}
        return type(form.__name__, (form,), extra)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        tenant = tenant_for_user(request.user)
        if tenant is not None:
            obj.tenant = tenant  # a tenant-bound user only ever writes its own tenant
        super().save_model(request, obj, form, change)
