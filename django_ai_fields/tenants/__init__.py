"""Tenants: ``TENANT_RESOLVER`` maps a row to a tenant string (here).

The submodules hold the rest of a tenant's rules: ``policies`` (AI switched off,
concurrency cap), ``permissions`` (who may see and steer jobs), ``concurrency`` (the
cap as a Redis semaphore), ``credentials`` (whose key a provider call uses),
``base_urls`` (the base URLs a tenant may use, ``TENANT_BASE_URLS``) and
``credential_audit`` (stored credentials as a whole: unreadable keys, rotation,
internal addresses)."""

from __future__ import annotations

from django.db import models
from django.utils.module_loading import import_string

from ..conf import get_setting


def resolve_tenant(instance: models.Model) -> str:
    path = get_setting("TENANT_RESOLVER")
    if not path:
        return ""
    resolver = import_string(path) if isinstance(path, str) else path
    tenant = resolver(instance)
    return "" if tenant is None else str(tenant)
