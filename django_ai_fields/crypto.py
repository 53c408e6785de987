"""Encryption at rest for tenant API keys (Fernet from ``cryptography``).

``AI_FIELDS["ENCRYPTION_KEY"]`` is one Fernet key or a list of them: the
first encrypts, all decrypt, so keys rotate by prepending a new one. Without
it, a key is derived from SECRET_KEY (set a real one in production).
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from .conf import get_setting


def configured_keys() -> list[str]:
    keys = get_setting("ENCRYPTION_KEY")
    if not keys:
        return []
    return [keys] if isinstance(keys, str) else list(keys)


def _derived_key() -> bytes:
    digest = hashlib.sha256(f"django_ai_fields:{settings.SECRET_KEY}".encode()).digest()
    return base64.urlsafe_b64encode(digest)


def fernet() -> MultiFernet:
    keys: list[str] | list[bytes] = configured_keys() or [_derived_key()]
    try:
        return MultiFernet([Fernet(k) for k in keys])
    except ValueError as exc:
        raise ImproperlyConfigured(
            f"AI_FIELDS['ENCRYPTION_KEY'] is not a Fernet key: {exc}"
        ) from exc


def encrypt(plaintext: str) -> str:
    return fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ImproperlyConfigured(
            "A stored API key cannot be decrypted with AI_FIELDS['ENCRYPTION_KEY'] "
            "(was the key rotated without keeping the old one in the list?)"
        ) from exc


def try_decrypt(token: str) -> str | None:
    """The plaintext of a token for one of the configured keys, else None."""
    try:
        return fernet().decrypt(token.encode()).decode()
    except (InvalidToken, UnicodeError):
        return None


def looks_like_token(value: str) -> bool:
    """True when ``value`` has a Fernet token's shape (version byte 0x80, at least
    one block), whichever key made it; an API key in plaintext never does."""
    try:
        raw = base64.urlsafe_b64decode(value.encode("ascii"))
    except (ValueError, UnicodeError):
        return False
    return len(raw) >= 73 and raw[0] == 0x80


def rotate(token: str) -> str:
    """Re-encrypt a stored value with the first (newest) key."""
    return fernet().rotate(token.encode()).decode()


__all__ = [
    "rotate",
]
