"""State the workers share: the circuit breakers, rate limits, tenants' concurrency
caps, manual-retry limits, the sweep's and the drains' marks, the probe report.

One small interface, two implementations, chosen by ``AI_FIELDS["SHARED_STATE"]``:

- ``redis`` (``redis_store.py``): shared by the whole deployment, each compound step
  one Lua script, atomic in Redis. The default whenever Redis is configured (the RQ
  queue's, or ``AI_FIELDS["REDIS_URL"]``);
- ``cache`` (``cache_store.py``): Django's cache framework (``SHARED_STATE_CACHE``),
  each compound step the script's Python twin run under a lock taken with
  ``cache.add``. Shared as widely as the cache is: the whole deployment with the
  database cache or Memcached, one process with the local-memory cache.

A compound step is a ``Script``: its Lua source for Redis and its Python twin for the
cache, written side by side in the module that uses it (breaker.py ...), so both say
the same thing. Every call may raise when the store is unreachable; the callers decide
what that means (the breaker and the limiters let the call through).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..conf import get_setting


class Values:
    """The keys a script's Python twin works on: read them, write them, delete them.
    Writes are applied when the twin returns (the cache store holds the lock)."""

    def __init__(self, current: dict[str, Any]) -> None:
        self.current = current
        self.written: dict[str, tuple[Any, float | None]] = {}
        self.deleted: set[str] = set()

    def get(self, key: str) -> Any:
        if key in self.deleted:
            return None
        if key in self.written:
            return self.written[key][0]
        return self.current.get(key)

    def set(self, key: str, value: Any, seconds: float | None) -> None:
        """Store ``value`` for ``seconds`` (None: as long as the key already lives)."""
        self.deleted.discard(key)
        self.written[key] = (value, seconds)

    def delete(self, key: str) -> None:
        self.written.pop(key, None)
        self.deleted.add(key)


Twin = Callable[..., Any]


@dataclass(frozen=True)
class Script:
    """One atomic step on shared keys: ``lua`` (KEYS, ARGV) for Redis, ``python``
    (``values, keys, *args``) for the cache. Both return the same answer."""

    lua: str
    python: Twin


class SharedState(Protocol):
    """What the app keeps outside the database (strings, expiring)."""

    # "deployment" (every worker sees the same state) or "process" (each its own).
    scope: str

    def add(self, key: str, value: str, seconds: float) -> bool:
        """Set ``key`` unless it exists; True when this call set it."""

    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str, seconds: float) -> None: ...

    def replace(self, key: str, value: str, seconds: float) -> bool:
        """Set ``key`` only if it exists; True when it did."""

    def delete(self, *keys: str) -> None: ...

    def delete_if(self, key: str, value: str) -> bool:
        """Delete ``key`` only while it holds ``value``; True when deleted."""

    def run(self, script: Script, keys: Sequence[str], *args: Any) -> Any:
        """Run ``script`` atomically on ``keys``."""


_stores: dict[Any, SharedState] = {}


def store() -> SharedState:
    """The configured store, built once per configuration and process."""
    kind = kind_configured()
    if kind == "redis":  # its connection is looked up per call (the queue's, or REDIS_URL)
        from . import redis_store

        if "redis" not in _stores:
            _stores["redis"] = redis_store.RedisState()
        return _stores["redis"]
    from . import cache_store

    alias = str(get_setting("SHARED_STATE_CACHE"))
    key: tuple[str, ...] = ("cache", alias, cache_store.identity(alias))
    if key not in _stores:
        _stores[key] = cache_store.CacheState(alias)
    return _stores[key]


def kind_configured() -> str:
    """ "redis" or "cache": ``SHARED_STATE``, where "auto" means Redis whenever Redis is
    configured (the RQ queue's or ``REDIS_URL``) and the cache otherwise."""
    wanted = str(get_setting("SHARED_STATE") or "auto")
    if wanted != "auto":
        return wanted
    from . import redis_store

    return "redis" if redis_store.configured() else "cache"


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


__all__ = ["Script", "SharedState", "Values", "store"]
