"""Whose key a provider call uses: a tenant's ProviderCredential row, used whole,
else the settings' PROVIDERS entry (docs/security.md).

The provider adapters receive the result as their config and never look up a
tenant themselves.
"""

from __future__ import annotations

from typing import Any

from ..conf import provider_settings
from ..models import ProviderBatch, ProviderCredential
from ..providers import Provider, provider_class
from .base_urls import on_allowlist

# Settings a tenant's credential takes over from the PROVIDERS entry: how to talk,
# never whom to talk to or with which secret (API_KEY, BASE_URL and any other key).
INHERITED_SETTINGS = ("TIMEOUT", "API_VERSION", "MAX_TOKENS_PARAM", "DEFAULT_MODEL")


def resolve_credentials(name: str, tenant: str | None) -> dict[str, Any]:
    """Credentials for a provider: a tenant's ProviderCredential row is
    used whole (its key with its base URL, nothing of the operator's); without a
    row, the settings' PROVIDERS entry. A row that may not be used comes back with
    no key, no URL and ``CREDENTIAL_ERROR``: the call fails ``auth`` with that
    message before any request (``require_key``)."""
    return resolve(name, tenant)[0]


def resolve(name: str, tenant: str | None) -> tuple[dict[str, Any], ProviderCredential | None]:
    """``resolve_credentials``, with the tenant's row it used (None: the settings)."""
    credential = tenant_credential(name, tenant)
    config = provider_settings(name)
    return (config if credential is None else credential_config(credential, config)), credential


def tenant_credential(name: str, tenant: str | None) -> ProviderCredential | None:
    """The tenant's credential row for provider ``name``; None: the settings' entry."""
    if not tenant:
        return None
    return ProviderCredential.objects.filter(tenant=tenant, provider=name).first()


def batch_credentials(batch: ProviderBatch) -> dict[str, Any]:
    """The config a provider batch is polled and read with: the one it was submitted
    with (the operator's settings, or the tenant's row still pointing at the same
    base URL), never re-resolved. A row deleted or moved since comes back unusable
    (``CREDENTIAL_ERROR``): nothing of the batch goes anywhere else."""
    settings_config = provider_settings(batch.provider)
    if batch.uses_settings:
        return settings_config
    if batch.credential is None:
        problem = (
            f"The provider credential provider batch {batch.batch_id} was submitted with "
            "was deleted: its results cannot be read with another one."
        )
        return {"API_KEY": "", "BASE_URL": "", "CREDENTIAL_ERROR": problem}
    config = credential_config(batch.credential, settings_config)
    if not config.get("CREDENTIAL_ERROR") and (config["BASE_URL"] or "") != batch.base_url:
        problem = (
            f"The base URL of tenant {batch.credential.tenant!r}'s {batch.provider!r} "
            f"credential changed after provider batch {batch.batch_id} was submitted: its "
            "results are read only from the server it was sent to."
        )
        return {**config, "API_KEY": "", "BASE_URL": "", "CREDENTIAL_ERROR": problem}
    return config


def credential_config(credential: Any, settings_config: dict[str, Any]) -> dict[str, Any]:
    """The provider config for a tenant's credential row (see resolve_credentials)."""
    config = {key: settings_config[key] for key in INHERITED_SETTINGS if key in settings_config}
    if credential.default_model:
        config["DEFAULT_MODEL"] = credential.default_model
    problem = credential_problem(credential)
    if problem:
        return {**config, "API_KEY": "", "BASE_URL": "", "CREDENTIAL_ERROR": problem}
    return {**config, "API_KEY": str(credential.api_key), "BASE_URL": credential.base_url or None}


def credential_problem(credential: Any) -> str:
    """Why a tenant's credential row may not be used ("" when it may)."""
    if credential.key_is_unreadable:
        return str(credential.unreadable_key_message())
    tenant, provider = credential.tenant, credential.provider
    if not credential.api_key:
        return (
            f"Tenant {tenant!r} has a {provider!r} provider credential without an API key: "
            "a tenant's credential is used whole, so enter the tenant's key (any "
            "placeholder for a server that needs none) or delete the row to use the "
            "operator's settings."
        )
    url = credential.base_url
    if url and credential.base_url_from_tenant and not on_allowlist(url):
        return (
            f"The base URL of tenant {tenant!r}'s {provider!r} credential was given by a "
            "tenant user and is not on AI_FIELDS['TENANT_BASE_URLS']; nothing was sent."
        )
    return ""


def get_provider(name: str, tenant: str | None = None) -> Provider:
    """The provider ``name`` configured for ``tenant`` (settings when None)."""
    return provider_class(name)(resolve_credentials(name, tenant))
