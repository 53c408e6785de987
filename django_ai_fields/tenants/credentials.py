"""Whose key a provider call uses: a tenant's ProviderCredential row, used whole,
else the settings' PROVIDERS entry (docs/security.md).

The provider adapters receive the result as their config and never look up a
tenant themselves.
"""

from __future__ import annotations

from typing import Any

from ..conf import provider_settings
from ..models import ProviderCredential
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
    config = provider_settings(name)
    if not tenant:
        return config
    credential = ProviderCredential.objects.filter(tenant=tenant, provider=name).first()
    if credential is None:
        return config
    return credential_config(credential, config)


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
