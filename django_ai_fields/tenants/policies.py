"""Tenant switches: AI turned off for a tenant, and its concurrency cap."""

from __future__ import annotations

from ..models import TenantPolicy


def policy_for(tenant: str) -> TenantPolicy | None:
    if not tenant:
        return None
    return TenantPolicy.objects.filter(tenant=tenant).first()
