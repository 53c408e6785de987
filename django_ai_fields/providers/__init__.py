"""Provider registry: built-in names or a dotted path to a Provider subclass."""

from __future__ import annotations

import logging
from typing import Any

from django.utils.module_loading import import_string

from ..conf import provider_settings
from ..tenants.base_urls import on_allowlist
from .base import CompletionRequest, CompletionResponse, Provider, ProviderError

logger = logging.getLogger("django_ai_fields")

BUILTIN = {
    "openai": "django_ai_fields.providers.openai.OpenAIProvider",
    "azure": "django_ai_fields.providers.openai.AzureOpenAIProvider",
    "anthropic": "django_ai_fields.providers.anthropic.AnthropicProvider",
    "offline": "django_ai_fields.providers.offline.OfflineProvider",
}


def provider_class(name: str) -> type[Provider]:
    """Resolve a provider name; raises ImportError/ValueError for unknown ones."""
    cls = import_string(BUILTIN.get(name, name))
    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        raise ValueError(f"{name!r} is not a django_ai_fields Provider subclass")
    return cls


# Settings a tenant's credential takes over from the PROVIDERS entry: how to talk,
# never whom to talk to or with which secret (API_KEY, BASE_URL and any other key).
INHERITED_SETTINGS = ("TIMEOUT", "API_VERSION", "MAX_TOKENS_PARAM", "DEFAULT_MODEL")


def resolve_credentials(name: str, tenant: str | None) -> dict[str, Any]:
    """Credentials for a provider (DESIGN §3): a tenant's ProviderCredential row is
    used whole (its key with its base URL, nothing of the operator's); without a
    row, the settings' PROVIDERS entry. A row that may not be used comes back with
    no key, no URL and ``CREDENTIAL_ERROR``: the call fails ``auth`` with that
    message before any request (``require_key``)."""
    config = provider_settings(name)
    if not tenant:
        return config
    from ..models import ProviderCredential

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


def preload() -> None:
    """Import and warm every provider the project uses (the default and each
    field's), with the settings' credentials: see Provider.warm()."""
    from django.apps import apps

    from ..conf import get_setting
    from ..fields import ai_fields_of

    names = {get_setting("DEFAULT_PROVIDER")}
    for model in apps.get_models():
        names |= {field.provider for field in ai_fields_of(model) if field.provider}
    for name in names:
        try:
            cls = provider_class(name)
        except (ImportError, ValueError):
            continue  # the system checks report it
        try:
            cls(provider_settings(name)).warm()
        except Exception:  # warming only saves time: a worker must start without it
            logger.warning("Could not warm provider %r", name, exc_info=True)


def get_provider(name: str, tenant: str | None = None) -> Provider:
    return provider_class(name)(resolve_credentials(name, tenant))


def build_provider(name: str, config: dict[str, Any]) -> Provider:
    return provider_class(name)(config)


__all__ = [
    "BUILTIN",
    "CompletionRequest",
    "CompletionResponse",
    "Provider",
    "ProviderError",
    "build_provider",
    "credential_config",
    "get_provider",
    "preload",
    "provider_class",
    "resolve_credentials",
]
