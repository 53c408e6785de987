"""Stored tenant credentials as a whole: rows whose key cannot be decrypted
(``ai_status``), re-encryption with the newest key (``ai_rotate_keys``), and
base URLs pointing at internal addresses (a system check, registered by apps.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.core import checks
from django.db import DatabaseError

from .. import crypto
from ..encrypted import UnreadableSecret
from ..models import ProviderCredential
from .base_urls import is_internal, on_allowlist


def describe(credential: ProviderCredential) -> dict[str, Any]:
    return {"id": credential.pk, "tenant": credential.tenant, "provider": credential.provider}


def unreadable_credentials() -> list[dict[str, Any]]:
    """Rows whose stored key the configured keys cannot decrypt, with the likely cause."""
    rows = ProviderCredential.objects.exclude(api_key="").order_by("pk")
    return [
        {**describe(c), "cause": c.api_key.cause}
        for c in rows.iterator()
        if isinstance(c.api_key, UnreadableSecret)  # c.key_is_unreadable, narrowed
    ]


@dataclass
class RotationReport:
    rotated: int = 0
    encrypted_plaintext: int = 0
    unreadable: list[dict[str, Any]] = field(default_factory=list)


def rotate_keys(dry_run: bool = False) -> RotationReport:
    """Re-encrypt every stored key with the first (newest) ENCRYPTION_KEY. A
    plaintext value (written around the field) is encrypted; a token no
    configured key opens is left alone and reported."""
    report = RotationReport()
    for credential in ProviderCredential.objects.exclude(api_key="").order_by("pk").iterator():
        secret = credential.api_key
        if isinstance(secret, UnreadableSecret):  # credential.key_is_unreadable
            if not secret.holds_plaintext:
                report.unreadable.append({**describe(credential), "cause": secret.cause})
                continue
            report.encrypted_plaintext += 1
            token = crypto.encrypt(secret.stored)
        else:
            report.rotated += 1
            token = crypto.encrypt(str(secret))
        if not dry_run:  # a token is stored as it is; updated_at stays
            ProviderCredential.objects.filter(pk=credential.pk).update(api_key=token)
    return report


def check_tenant_base_urls(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Warn about stored credentials whose base URL is internal and not allowlisted
    (a database check: ``manage.py check --database default``, ``migrate``)."""
    if not databases:
        return []
    try:
        rows = list(
            ProviderCredential.objects.exclude(base_url="").values_list(
                "pk", "tenant", "provider", "base_url"
            )
        )
    except DatabaseError:  # not migrated yet
        return []
    return [
        checks.Warning(
            f"Provider credential #{pk} (tenant {tenant!r}, {provider}) points at the "
            f"internal address {url}, which is not on AI_FIELDS['TENANT_BASE_URLS'].",
            hint="Workers send record data there. Change the URL, or add its prefix to "
            "TENANT_BASE_URLS if this internal server is meant for that tenant.",
            id="django_ai_fields.W020",
        )
        for pk, tenant, provider, url in rows
        if is_internal(url) and not on_allowlist(url)
    ]
