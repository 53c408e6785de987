"""The shared state in Django's cache framework (``AI_FIELDS["SHARED_STATE_CACHE"]``),
for deployments without Redis.

Each compound step runs its script's Python twin under a lock on the script's first
key, taken with ``cache.add`` (atomic on the database cache, Memcached and Redis; the
local-memory cache takes a process lock). A lock whose holder died expires after
LOCK_SECONDS. Each value is kept with its expiry time, so a twin can rewrite a key
and keep the time it has left, as Redis's HSET does.

How far the state is shared is the cache's: one process with the local-memory cache
(Django's default), the deployment with the database cache or Memcached.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.core.cache import caches

from .base import Script, Values

# Seconds a lock lives at most (its holder died), and how long a caller waits for one.
LOCK_SECONDS = 5.0
LOCK_WAIT = 2.0
PREFIX_LOCK = "django_ai_fields:lock:"
LOCAL_BACKENDS = ("LocMemCache", "DummyCache")


def identity(alias: str) -> str:
    return repr((getattr(settings, "CACHES", None) or {}).get(alias))


class CacheState:
    def __init__(self, alias: str) -> None:
        self.alias = alias
        backend = str((getattr(settings, "CACHES", None) or {}).get(alias, {}).get("BACKEND", ""))
        self.scope = "process" if backend.endswith(LOCAL_BACKENDS) else "deployment"

    @property
    def cache(self) -> Any:
        return caches[self.alias]

    def add(self, key: str, value: str, seconds: float) -> bool:
        return bool(self.cache.add(key, _envelope(value, seconds), timeout=_timeout(seconds)))

    def get(self, key: str) -> str | None:
        return _value(self.cache.get(key))

    def set(self, key: str, value: str, seconds: float) -> None:
        self.cache.set(key, _envelope(value, seconds), timeout=_timeout(seconds))

    def replace(self, key: str, value: str, seconds: float) -> bool:
        with self.lock(key):
            if self.get(key) is None:
                return False
            self.set(key, value, seconds)
            return True

    def delete(self, *keys: str) -> None:
        if keys:
            self.cache.delete_many(list(keys))

    def delete_if(self, key: str, value: str) -> bool:
        with self.lock(key):
            if self.get(key) != value:
                return False
            self.cache.delete(key)
            return True

    def run(self, script: Script, keys: Sequence[str], *args: Any) -> Any:
        with self.lock(keys[0]):
            stored = self.cache.get_many(list(keys))
            values = Values({key: _value(stored.get(key)) for key in keys})
            result = script.python(values, list(keys), *args)
            for key, (value, seconds) in values.written.items():
                if seconds is None:  # keep the time the key has left
                    expires = (stored.get(key) or {}).get("expires")
                    seconds = (expires - time.time()) if expires else 3600.0
                self.cache.set(key, _envelope(value, seconds), timeout=_timeout(seconds))
            if values.deleted:
                self.cache.delete_many(sorted(values.deleted))
        return result

    @contextmanager
    def lock(self, key: str) -> Iterator[None]:
        name, token = PREFIX_LOCK + key, uuid.uuid4().hex
        deadline = time.monotonic() + LOCK_WAIT
        pause = 0.001
        while not self.cache.add(name, token, timeout=LOCK_SECONDS):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the shared-state lock {name!r} stayed taken")
            time.sleep(pause)
            pause = min(pause * 2, 0.02)
        try:
            yield
        finally:
            if self.cache.get(name) == token:
                self.cache.delete(name)


def _envelope(value: Any, seconds: float) -> dict[str, Any]:
    return {"value": value, "expires": time.time() + seconds}


def _value(stored: Any) -> Any:
    if not isinstance(stored, dict) or stored.get("expires", 0) < time.time():
        return None
    return stored["value"]


def _timeout(seconds: float) -> int:
    """Whole seconds, at least 1 (Memcached reads 0 as "never expires"); the envelope's
    own expiry time is exact."""
    return max(1, math.ceil(seconds))
