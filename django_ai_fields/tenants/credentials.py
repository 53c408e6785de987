"""Whose key a provider call uses: the tenant's ProviderCredential, else settings.

The provider adapters receive the result as their config and never look up a
tenant themselves.
"""

from __future__ import annotations

from typing import Any

from ..conf import provider_settings
from ..models import ProviderCredential
from ..providers import Provider, provider_class


def resolve_credentials(name: str, tenant: str | None) -> dict[str, Any]:
    """Credentials for a provider: the tenant's ProviderCredential first, then
    the settings' PROVIDERS entry. A missing key surfaces as an ``auth`` error."""
    config = provider_settings(name)
    if tenant:
        credential = ProviderCredential.objects.filter(tenant=tenant, provider=name).first()
        if credential is not None:
            config["API_KEY"] = credential.get_api_key() or config.get("API_KEY")
            config["BASE_URL"] = credential.base_url or config.get("BASE_URL")
            config["DEFAULT_MODEL"] = credential.default_model or config.get("DEFAULT_MODEL")
    return config


def get_provider(name: str, tenant: str | None = None) -> Provider:
    """The provider ``name`` configured for ``tenant`` (settings when None)."""
    return provider_class(name)(resolve_credentials(name, tenant))
