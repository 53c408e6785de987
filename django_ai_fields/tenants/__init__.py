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
from ..models import AIJob


def resolve_tenant(instance: models.Model) -> str:
    path = get_setting("TENANT_RESOLVER")
    if not path:
        return ""
    resolver = import_string(path) if isinstance(path, str) else path
    tenant = resolver(instance)
    return "" if tenant is None else str(tenant)


def tenant_now(job: AIJob) -> str | None:
    """The tenant a job's row belongs to now (TENANT_RESOLVER: the row may have moved
    since the job was requested); None when the job has no row or it is gone."""
    row = job.get_target()
    return None if row is None else resolve_tenant(row)


def moved_away(job: AIJob, tenant: str | None) -> bool:
    """True when a user confined to ``tenant`` may no longer see what the job read
    from its row (its prompt, its answer): the row belongs to another tenant now.
    ``tenant`` None: an operator, who sees everything."""
    if tenant is None:
        return False
    now = tenant_now(job)
    return now is not None and now != tenant
