"""Who may see and change what on the app's own admin pages (``TENANT_FOR_USER``)."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.http import HttpRequest

from ..tenants.permissions import NoTenant, scope_or_empty, tenant_for_user

__all__ = [
    "OperatorOnlyChangesMixin",
    "TenantScopedAdminMixin",
    "no_tenant",
    "tenant_bound",
    "user_tenant",
]


def user_tenant(request: HttpRequest) -> str | None:
    """The tenant the user is confined to ("" for a user of no tenant); None: all."""
    try:
        return tenant_for_user(request.user)
    except NoTenant:
        return ""


def tenant_bound(request: HttpRequest) -> bool:
    """True when TENANT_FOR_USER confines this user to one tenant (or to none)."""
    try:
        return tenant_for_user(request.user) is not None
    except NoTenant:
        return True


def no_tenant(request: HttpRequest) -> bool:
    """True when TENANT_FOR_USER is set and maps this (non-superuser) to no tenant."""
    try:
        tenant_for_user(request.user)
    except NoTenant:
        return True
    return False


class TenantScopedAdminMixin:
    """Confines the app's admin pages to the user's tenant (``TENANT_FOR_USER``)."""

    tenant_field = "tenant"

    def get_queryset(self, request: HttpRequest) -> models.QuerySet[Any]:
        queryset = super().get_queryset(request)  # type: ignore[misc]
        return scope_or_empty(queryset, request.user, self.tenant_field)


class OperatorOnlyChangesMixin:
    """Tenant-bound users may look but not add, change or delete."""

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return not tenant_bound(request) and super().has_add_permission(request, *args)  # type: ignore[misc]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not tenant_bound(request) and super().has_change_permission(request, obj)  # type: ignore[misc]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not tenant_bound(request) and super().has_delete_permission(request, obj)  # type: ignore[misc]
