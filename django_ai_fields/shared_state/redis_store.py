"""The shared state in Redis: the RQ queue's connection, or ``AI_FIELDS["REDIS_URL"]``.
Every compound step is one Lua script, so it is atomic for the whole deployment."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings

from .. import queues
from ..conf import get_setting
from .base import Script, text

# Deletes a key only if it still holds the value given.
_DELETE_IF = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end"

_clients: dict[str, Any] = {}


def configured() -> bool:
    """Is there a Redis to keep the state in?"""
    return bool(get_setting("REDIS_URL")) or rq_queue_configured()


def rq_queue_configured() -> bool:
    return get_setting("QUEUE") in (getattr(settings, "RQ_QUEUES", None) or {})


def identity() -> tuple[str, str]:
    name = get_setting("QUEUE")
    return str(get_setting("REDIS_URL")), repr(
        (getattr(settings, "RQ_QUEUES", None) or {}).get(name)
    )


def connection() -> Any:
    """``REDIS_URL``'s client when set, else the RQ queue's connection."""
    url = get_setting("REDIS_URL")
    if not url:
        return queues.redis()
    client = _clients.get(url)
    if client is None:
        import redis

        client = _clients[url] = redis.Redis.from_url(url)
    return client


class RedisState:
    scope = "deployment"

    def add(self, key: str, value: str, seconds: float) -> bool:
        return bool(connection().set(key, value, nx=True, px=_ms(seconds)))

    def get(self, key: str) -> str | None:
        value = connection().get(key)
        return None if value is None else text(value)

    def set(self, key: str, value: str, seconds: float) -> None:
        connection().set(key, value, px=_ms(seconds))

    def replace(self, key: str, value: str, seconds: float) -> bool:
        return bool(connection().set(key, value, xx=True, px=_ms(seconds)))

    def delete(self, *keys: str) -> None:
        if keys:
            connection().delete(*keys)

    def delete_if(self, key: str, value: str) -> bool:
        return bool(connection().eval(_DELETE_IF, 1, key, value))

    def run(self, script: Script, keys: Sequence[str], *args: Any) -> Any:
        return _decoded(connection().eval(script.lua, len(keys), *keys, *args))


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _decoded(value: Any) -> Any:
    if isinstance(value, list):
        return [_decoded(item) for item in value]
    return text(value) if isinstance(value, bytes) else value
