"""The shared state's interface: ``SharedState`` (what a store offers) and ``Script``
(one atomic step: Lua for Redis, a Python twin for the cache), see __init__.py."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


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


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
