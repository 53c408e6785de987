"""Which base URLs a tenant may point its credential at (``TENANT_BASE_URLS``).

A prefix matches a URL when scheme, host and port are the same and the URL's
path starts with the prefix's path at a segment boundary: the prefix
``https://llm.example.com/v1`` allows ``https://llm.example.com/v1/`` and
``https://llm.example.com/v1/chat``, not ``https://llm.example.com.evil.net/v1``
nor ``https://llm.example.com/v10``. Internal addresses (loopback, link-local,
private, unspecified) are recognised from IP literals and ``localhost`` names;
host names are not resolved here (docs/security.md says what that leaves open).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from ..conf import get_setting

DEFAULT_PORTS = {"http": 80, "https": 443}


def allowed_prefixes() -> list[str]:
    prefixes = get_setting("TENANT_BASE_URLS") or []
    return [prefixes] if isinstance(prefixes, str) else [str(p) for p in prefixes]


def _origin_and_path(url: str) -> tuple[tuple[str, str, int | None], str] | None:
    try:
        parts = urlsplit(url.strip())
        port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    return (parts.scheme.lower(), parts.hostname.lower(), port), parts.path or "/"


def matches_prefix(url: str, prefix: str) -> bool:
    target, wanted = _origin_and_path(url), _origin_and_path(prefix)
    if target is None or wanted is None or target[0] != wanted[0]:
        return False
    path, base = target[1], wanted[1].rstrip("/") + "/"
    return (path.rstrip("/") + "/").startswith(base)


def on_allowlist(url: str, prefixes: list[str] | None = None) -> bool:
    """True when ``url`` starts with one of ``TENANT_BASE_URLS`` (or ``prefixes``)."""
    prefixes = allowed_prefixes() if prefixes is None else prefixes
    return any(matches_prefix(url, prefix) for prefix in prefixes)


def is_internal(url: str) -> bool:
    """True for a URL whose host is loopback, link-local, private or unspecified."""
    parsed = _origin_and_path(url)
    if parsed is None:
        return False
    host = parsed[0][1].strip("[]")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return (
        address.is_loopback
        or address.is_link_local
        or address.is_private
        or address.is_unspecified
        or address.is_reserved
    )
