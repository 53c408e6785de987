"""Which base URLs a tenant may point its credential at (``TENANT_BASE_URLS``).

A prefix matches a URL when scheme, host and port are the same and the URL's
path starts with the prefix's path at a segment boundary: the prefix
``https://llm.example.com/v1`` allows ``https://llm.example.com/v1/`` and
``https://llm.example.com/v1/chat``, not ``https://llm.example.com.evil.net/v1``
nor ``https://llm.example.com/v10``.

URLs are read as the HTTP client will use them, so that what is compared is
where the requests go:

- a path with a ``.`` or ``..`` segment matches no prefix, whether written
  plainly, percent-encoded (at any depth) or behind a backslash or ``;``: the
  client or the server resolves them, so ``/v1/../internal`` reaches ``/internal``;
- percent-encoded unreserved characters are decoded (``/%76%31`` is ``/v1``);
- a host is an IP address when the socket layer reads it as one
  (``getaddrinfo`` without DNS): ``127.1``, ``2130706433``, ``0x7f.0.0.1`` and
  ``0177.0.0.1`` are all 127.0.0.1, which ``ipaddress`` alone does not see.

Internal addresses (loopback, link-local, private, unspecified, reserved) are
recognised from IP addresses and ``localhost`` names; host names are not resolved
here (docs/security.md says what that leaves open).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from ..conf import get_setting

DEFAULT_PORTS = {"http": 80, "https": 443}
# RFC 3986 unreserved characters: percent-encoding them changes nothing.
ENCODED_UNRESERVED = re.compile(r"%(2[dDeE]|5[fF]|7[eE]|[46][1-9a-fA-F]|[57][0-9aA]|3[0-9])")
# What servers may read as a segment separator, besides "/".
SEPARATORS = re.compile(r"[/\\]")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Target:
    """Where a URL's requests go: scheme, canonical host, port, and path."""

    scheme: str
    host: str
    port: int | None
    path: str
    address: IPAddress | None

    @property
    def origin(self) -> tuple[str, str, int | None]:
        return self.scheme, self.host, self.port


def allowed_prefixes() -> list[str]:
    prefixes = get_setting("TENANT_BASE_URLS") or []
    return [prefixes] if isinstance(prefixes, str) else [str(p) for p in prefixes]


def parse(url: str) -> Target | None:
    """The URL's target; None when it is no absolute URL."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    address = host_address(parts.hostname)
    host = str(address) if address else parts.hostname.lower().rstrip(".")
    path = ENCODED_UNRESERVED.sub(lambda m: unquote(m.group(0)), parts.path) or "/"
    return Target(parts.scheme.lower(), host, port, path, address)


def host_address(host: str) -> IPAddress | None:
    """The IP address ``host`` stands for without DNS, read the way the socket layer
    reads it when the HTTP client connects; None for a host name."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, None, flags=socket.AI_NUMERICHOST)
    except (OSError, UnicodeError, ValueError):
        return None
    return ipaddress.ip_address(found[0][4][0]) if found else None


def has_dot_segment(path: str) -> bool:
    """True when a segment of the path is ``.`` or ``..`` once fully decoded."""
    decoded = path
    while (once_more := unquote(decoded)) != decoded:
        decoded = once_more
    segments = SEPARATORS.split(decoded)
    return any(segment.split(";")[0] in (".", "..") for segment in segments)


def matches_prefix(url: str, prefix: str) -> bool:
    target, wanted = parse(url), parse(prefix)
    if target is None or wanted is None or target.origin != wanted.origin:
        return False
    if has_dot_segment(target.path):
        return False
    base = wanted.path.rstrip("/") + "/"
    return (target.path.rstrip("/") + "/").startswith(base)


def on_allowlist(url: str, prefixes: list[str] | None = None) -> bool:
    """True when ``url`` starts with one of ``TENANT_BASE_URLS`` (or ``prefixes``)."""
    prefixes = allowed_prefixes() if prefixes is None else prefixes
    return any(matches_prefix(url, prefix) for prefix in prefixes)


def is_internal(url: str) -> bool:
    """True for a URL whose host is loopback, link-local, private or unspecified."""
    target = parse(url)
    if target is None:
        return False
    if target.host == "localhost" or target.host.endswith(".localhost"):
        return True
    address = target.address
    if address is None:
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
