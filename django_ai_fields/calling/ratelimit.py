"""Per-provider rate limits (requests and tokens per minute), shared by the workers
(shared_state: Redis, or Django's cache).

Two token buckets per provider, refilled continuously (RPM/60 a second), checked
and taken in one atomic script: a call goes ahead only if both have room, so any
number of workers stay under the limit together (with a local-memory cache, each
process keeps its own buckets: the limit then holds per process). A job that finds
no room is delayed (rescheduled for when the bucket refills), never failed, and
keeps its attempts. Trouble with the shared state lets the call through: the
provider's own 429 remains the last line of defence.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ..conf import get_setting
from ..shared_state import Script, Values, store

logger = logging.getLogger("django_ai_fields")

PREFIX = "django_ai_fields:ratelimit:"

# KEYS: requests bucket, tokens bucket. ARGV: now, rpm, tpm, tokens.
# Returns "0" when taken, else the seconds until there would be room.
_TAKE = """
local now = tonumber(ARGV[1])
local function level(key, capacity)
  local saved = redis.call('HMGET', key, 'level', 'at')
  local value = tonumber(saved[1]) or capacity
  local at = tonumber(saved[2]) or now
  return math.min(capacity, value + math.max(0, now - at) * capacity / 60)
end
local rpm, tpm, cost = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local wait, requests, tokens = 0, 0, 0
if rpm > 0 then
  requests = level(KEYS[1], rpm)
  if requests < 1 then wait = math.max(wait, (1 - requests) * 60 / rpm) end
end
if tpm > 0 then
  cost = math.min(cost, tpm)
  tokens = level(KEYS[2], tpm)
  if tokens < cost then wait = math.max(wait, (cost - tokens) * 60 / tpm) end
end
if wait > 0 then return tostring(wait) end
if rpm > 0 then
  redis.call('HSET', KEYS[1], 'level', tostring(requests - 1), 'at', tostring(now))
  redis.call('EXPIRE', KEYS[1], 120)
end
if tpm > 0 then
  redis.call('HSET', KEYS[2], 'level', tostring(tokens - cost), 'at', tostring(now))
  redis.call('EXPIRE', KEYS[2], 120)
end
return '0'
"""
# Seconds a bucket is kept after its last use (full again by then).
BUCKET_SECONDS = 120


def _take_twin(values: Values, keys: list[str], now: str, *limits: Any) -> str:
    moment, rpm, tpm, cost = float(now), int(limits[0]), int(limits[1]), int(limits[2])

    def level(key: str, capacity: int) -> float:
        saved = values.get(key) or {}
        value = float(saved.get("level", capacity))
        at = float(saved.get("at", moment))
        return min(capacity, value + max(0.0, moment - at) * capacity / 60)

    wait, requests, tokens = 0.0, 0.0, 0.0
    if rpm > 0:
        requests = level(keys[0], rpm)
        if requests < 1:
            wait = max(wait, (1 - requests) * 60 / rpm)
    if tpm > 0:
        cost = min(cost, tpm)
        tokens = level(keys[1], tpm)
        if tokens < cost:
            wait = max(wait, (cost - tokens) * 60 / tpm)
    if wait > 0:
        return repr(wait)
    if rpm > 0:
        values.set(keys[0], {"level": requests - 1, "at": moment}, BUCKET_SECONDS)
    if tpm > 0:
        values.set(keys[1], {"level": tokens - cost, "at": moment}, BUCKET_SECONDS)
    return "0"


TAKE = Script(_TAKE, _take_twin)


def limits_for(provider: str) -> tuple[int, int]:
    """(requests per minute, tokens per minute) for a provider; 0 means no limit."""
    entry = (get_setting("RATE_LIMITS") or {}).get(provider) or {}
    return int(entry.get("RPM") or 0), int(entry.get("TPM") or 0)


def acquire(provider: str, tokens: int) -> float:
    """Take one request and ``tokens`` tokens from the provider's buckets.
    Returns 0 when taken, else the seconds to wait before trying again."""
    rpm, tpm = limits_for(provider)
    if not rpm and not tpm:
        return 0.0
    keys = (f"{PREFIX}{provider}:requests", f"{PREFIX}{provider}:tokens")
    try:
        wait = store().run(TAKE, keys, repr(time.time()), rpm, tpm, max(0, tokens))
    except Exception as exc:
        logger.warning("Rate limiter unavailable (%s): call allowed", exc)
        return 0.0
    return float(wait)
