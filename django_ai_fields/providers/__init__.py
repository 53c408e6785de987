"""Provider registry: built-in names or a dotted path to a Provider subclass."""

from __future__ import annotations

import logging
from typing import Any

from django.utils.module_loading import import_string

from ..conf import provider_settings
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
    return cls  # type: ignore[no-any-return]


def resolve_credentials(name: str, tenant: str | None) -> dict[str, Any]:
    """Credentials for a provider: the tenant's ProviderCredential first, then
    the settings' PROVIDERS entry. A missing key surfaces as an ``auth`` error."""
    config = provider_settings(name)
    if tenant:
        from ..models import ProviderCredential

        credential = ProviderCredential.objects.filter(tenant=tenant, provider=name).first()
        if credential is not None:
            config["API_KEY"] = credential.get_api_key() or config.get("API_KEY")
            config["BASE_URL"] = credential.base_url or config.get("BASE_URL")
            config["DEFAULT_MODEL"] = credential.default_model or config.get("DEFAULT_MODEL")
    return config


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
    "get_provider",
    "preload",
    "provider_class",
    "resolve_credentials",
]
