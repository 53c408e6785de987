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

from typing import Any

from ..conf import get_setting
from .base import Script, SharedState, Values

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


__all__ = ["Script", "SharedState", "Values", "store"]
