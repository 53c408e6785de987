"""Who may see and steer AI jobs: model permissions and tenant scoping.

``AI_FIELDS["TENANT_FOR_USER"]`` (dotted path, ``callable(user) -> str | None``)
confines a user to one tenant everywhere: the JSON API, the admin of the app's
models and the aggregates. What the callable returns means:

- a string: the user sees that tenant only (``""`` is the rows without a tenant);
- ``None``: the user belongs to no tenant. A superuser then sees every tenant;
  anyone else sees nothing (the API answers 403 ``no_tenant``, the admin shows
  empty lists). Failing closed keeps a bug in the callable from leaking data.

Without the setting there is no scoping: a single-tenant project.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth import get_permission_codename
from django.core.exceptions import PermissionDenied
from django.db import models
from django.utils.module_loading import import_string

from ..conf import get_setting


class NoTenant(PermissionDenied):
    """The setting is on and the user maps to no tenant (and is no superuser)."""


def _resolver() -> Callable[[Any], str | None] | None:
    path = get_setting("TENANT_FOR_USER")
    if not path:
        return None
    return import_string(path) if isinstance(path, str) else path


def tenant_for_user(user: Any) -> str | None:
    """The tenant the user is confined to; None: all tenants. Raises NoTenant."""
    resolver = _resolver()
    if resolver is None:
        return None
    tenant = resolver(user) if user.is_authenticated else None
    if tenant is not None:
        return str(tenant)
    if user.is_active and user.is_superuser:
        return None
    raise NoTenant("This user belongs to no tenant.")


def is_operator(user: Any) -> bool:
    """A superuser or staff member bound to no tenant: trusted with what costs the
    whole deployment, such as live provider probes (docs/security.md)."""
    if not (user.is_authenticated and user.is_active and (user.is_superuser or user.is_staff)):
        return False
    resolver = _resolver()
    return resolver is None or resolver(user) is None


def scope(queryset: models.QuerySet[Any], user: Any, field: str = "tenant") -> models.QuerySet[Any]:
    """Filter a queryset to the user's tenant (raises NoTenant)."""
    tenant = tenant_for_user(user)
    return queryset if tenant is None else queryset.filter(**{field: tenant})


def scope_or_empty(
    queryset: models.QuerySet[Any], user: Any, field: str = "tenant"
) -> models.QuerySet[Any]:
    """Like scope(), but a user without a tenant gets an empty queryset (admin lists)."""
    try:
        return scope(queryset, user, field)
    except NoTenant:
        return queryset.none()


def has_model_perm(user: Any, action: str, model: type[models.Model]) -> bool:
    """Django's model permission; as in the admin, *change* implies *view*."""
    if not (user.is_authenticated and user.is_active):
        return False
    opts = model._meta
    actions = ("view", "change") if action == "view" else (action,)
    return any(
        user.has_perm(f"{opts.app_label}.{get_permission_codename(name, opts)}") for name in actions
    )
