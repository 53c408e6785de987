"""Provider registry: built-in names or a dotted path to a Provider subclass (here).

The providers package is the layer just above the shared vocabulary: SDK adapters
that know nothing of fields, tenants or jobs. Whose key a call uses is decided
above it (tenants/credentials.py), and handed in as the provider's config.

``base`` (the interface), the adapters ``openai`` (with ``openai_responses``, its
Responses API mode), ``anthropic`` and ``offline``; what they share: ``usage``
(reading an SDK answer and its billing details), ``reported`` (the bounds on the
numbers an answer reports), ``key_redaction`` (no API key in an error message),
``streams`` (streamed answers), ``tools`` (hosted tools), ``attachments`` (files
sent with a prompt), ``batching`` (batch API bodies and results) and ``loop``
(the event loop of async calls)."""

from __future__ import annotations

from typing import Any

from django.utils.module_loading import import_string

from .base import CompletionRequest, CompletionResponse, Provider, ProviderError

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


def build_provider(name: str, config: dict[str, Any]) -> Provider:
    return provider_class(name)(config)


__all__ = [
    "BUILTIN",
    "CompletionRequest",
    "CompletionResponse",
    "Provider",
    "ProviderError",
    "build_provider",
    "provider_class",
]
