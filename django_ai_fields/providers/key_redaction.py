"""API keys kept out of provider error messages.

A provider's error text ends on the job (``AIJob.error``, which tenant users
see), in the worker log, in ``ai_status`` and in ``/ai/diagnostics/``; a server
may quote the key it refused, whole. Every ``ProviderError`` message passes
through ``redact_keys``: the keys configured in settings, every key a provider
was built with in this process (``remember_key``: a tenant's own credential
included), and anything shaped like a key are replaced by ``[redacted]``.

The SDKs' exceptions cannot tell which key a request carried (their request
objects hold no auth header), hence the keys remembered from the providers.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "[redacted]"
# Shorter configured values are placeholders ("none", "x"), not secrets:
# replacing them everywhere in a message would garble it.
MIN_KEY_CHARS = 8

# Key shapes: OpenAI, Anthropic (sk-ant-...), OpenRouter (sk-or-...) and LiteLLM keys;
# Google keys; JSON web tokens; whatever follows "Bearer".
KEY_SHAPES = re.compile(
    r"\bsk-[A-Za-z0-9_\-]{8,}"
    r"|\bAIza[A-Za-z0-9_\-]{30,}"
    r"|\beyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*"
    r"|(?<=Bearer )[^\s\"',;]+",
    re.IGNORECASE,
)
# A long run of token characters: a key when it looks random (see ``random_looking``).
LONG_TOKEN = re.compile(r"[A-Za-z0-9_\-+/=]{32,}")
HEX = re.compile(r"[0-9a-fA-F]+")


# Keys providers were built with in this process (see remember_key).
_remembered: set[str] = set()


def remember_key(key: Any) -> None:
    """Note a key a provider uses, so errors of its calls never show it."""
    if key and len(str(key)) >= MIN_KEY_CHARS:
        _remembered.add(str(key))


def redact_keys(text: str) -> str:
    """``text`` with the known keys and key-shaped strings replaced."""
    for key in sorted({*configured_keys(), *_remembered}, key=len, reverse=True):
        if len(key) >= MIN_KEY_CHARS:
            text = text.replace(key, REDACTED)
    text = KEY_SHAPES.sub(REDACTED, text)
    return LONG_TOKEN.sub(lambda m: REDACTED if random_looking(m[0]) else m[0], text)


def random_looking(token: str) -> bool:
    """Mixed case with digits (base64-like keys), or all hex (Azure keys): not a
    word, a model name (lower case) or a UUID (its dashes break the run)."""
    if HEX.fullmatch(token):
        return True
    return (
        any(c.isupper() for c in token)
        and any(c.islower() for c in token)
        and any(c.isdigit() for c in token)
    )


def configured_keys() -> list[str]:
    """The API keys in ``AI_FIELDS["PROVIDERS"]``."""
    from ..conf import get_setting

    providers = get_setting("PROVIDERS") or {}
    entries = providers.values() if isinstance(providers, dict) else []
    return [
        str(entry["API_KEY"])
        for entry in entries
        if isinstance(entry, dict) and entry.get("API_KEY")
    ]


def scrub_exception(exc: BaseException) -> None:
    """Redact an SDK exception's own text in place: it stays chained as the cause
    of the ProviderError, and a logged traceback prints it."""
    exc.args = tuple(redact_keys(a) if isinstance(a, str) else a for a in exc.args)
    if isinstance(getattr(exc, "message", None), str):
        exc.message = redact_keys(exc.message)  # type: ignore[attr-defined]
