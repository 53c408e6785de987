"""A circuit breaker per provider+model whose state lives in Redis, shared by all workers.

closed --(CIRCUIT_FAILURES retryable failures within CIRCUIT_WINDOW, no success
between)--> open --(CIRCUIT_COOLDOWN elapsed)--> half-open: exactly one caller
gets the probe (taken atomically in Lua); its success closes the circuit, its
failure opens it again. A probe whose worker died frees itself after the
provider's TIMEOUT (+5 s). Every transition is one Lua script, so no two workers
ever both see "I may probe" (pybreaker's per-process state would let each worker
probe, and reset on every new instance).

Redis trouble never blocks a call: the breaker then lets everything through.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from ..conf import get_setting
from ..providers.base import RETRYABLE_CODES, ProviderError
from ..queues import redis

logger = logging.getLogger("django_ai_fields")

PREFIX = "django_ai_fields:circuit:"
INDEX = "django_ai_fields:circuits"

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"

# KEYS[1] state hash. ARGV: now, probe_ttl, token. -> {verdict, seconds to wait}
_ALLOW = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state or state == 'closed' then return {'closed', '0'} end
local now = tonumber(ARGV[1])
if state == 'open' then
  local reopen = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
  if now < reopen then return {'open', tostring(reopen - now)} end
else
  local probe_until = tonumber(redis.call('HGET', KEYS[1], 'probe_until') or '0')
  if now < probe_until then return {'half_open', tostring(probe_until - now)} end
end
redis.call('HSET', KEYS[1], 'state', 'half_open', 'probe', ARGV[3],
           'probe_until', tostring(now + tonumber(ARGV[2])))
return {'probe', '0'}
"""

# KEYS[1] state hash, KEYS[2] failure times, KEYS[3] index.
# ARGV: now, window, threshold, cooldown, token, member, provider, model, ttl.
_FAILURE = """
local now = tonumber(ARGV[1])
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
local function open()
  redis.call('HSET', KEYS[1], 'state', 'open', 'open_until', tostring(now + tonumber(ARGV[4])),
             'opened_at', tostring(now), 'probe', '', 'probe_until', '0',
             'provider', ARGV[7], 'model', ARGV[8])
  redis.call('HINCRBY', KEYS[1], 'times_opened', 1)
  redis.call('EXPIRE', KEYS[1], ARGV[9])
  redis.call('DEL', KEYS[2])
  redis.call('SADD', KEYS[3], KEYS[1])
  return 'open'
end
if state == 'half_open' then
  if redis.call('HGET', KEYS[1], 'probe') == ARGV[5] then return open() end
  return state
end
if state == 'open' then return state end
redis.call('ZADD', KEYS[2], now, ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[2]))
redis.call('EXPIRE', KEYS[2], ARGV[9])
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then return open() end
return 'closed'
"""

# KEYS[1] state hash, KEYS[2] failure times. ARGV: token.
_SUCCESS = """
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
if state == 'half_open' then
  if redis.call('HGET', KEYS[1], 'probe') ~= ARGV[1] then return state end
  redis.call('HSET', KEYS[1], 'state', 'closed', 'probe', '', 'probe_until', '0')
elseif state == 'open' then
  return state
end
redis.call('DEL', KEYS[2])
return 'closed'
"""

# KEYS[1] state hash. ARGV: token. An unused probe goes back for the next caller.
_RELEASE = """
if redis.call('HGET', KEYS[1], 'state') == 'half_open'
   and redis.call('HGET', KEYS[1], 'probe') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'probe', '', 'probe_until', '0')
end
return 1
"""


@dataclass
class Permit:
    """The breaker's answer for one call."""

    provider: str
    model: str
    allowed: bool
    # This call is the half-open probe: its outcome decides the circuit.
    probe: bool = False
    token: str = ""
    # Seconds until the circuit may let a call through (when not allowed).
    wait: float = 0.0
    state: str = CLOSED
    settled: bool = False


def enabled() -> bool:
    return int(get_setting("CIRCUIT_FAILURES") or 0) > 0


def key_for(provider: str, model: str) -> str:
    return f"{PREFIX}{provider}|{model}"


def _ttl() -> int:
    seconds = float(get_setting("CIRCUIT_WINDOW")) + float(get_setting("CIRCUIT_COOLDOWN"))
    return int(seconds) + 3600


def allow(provider: str, model: str, probe_ttl: float) -> Permit:
    """May a call to provider+model go ahead now? Takes the probe when one is due."""
    token = uuid.uuid4().hex
    if not enabled():
        return Permit(provider, model, allowed=True, token=token)
    try:
        verdict, wait = redis().eval(
            _ALLOW, 1, key_for(provider, model), repr(time.time()), repr(probe_ttl), token
        )
    except Exception as exc:  # Redis down: never block a call on the breaker
        logger.warning("Circuit breaker unavailable (%s): call allowed", exc)
        return Permit(provider, model, allowed=True, token=token)
    verdict = _text(verdict)
    allowed = verdict in (CLOSED, "probe")
    state = HALF_OPEN if verdict == "probe" else verdict
    return Permit(
        provider,
        model,
        allowed=allowed,
        probe=verdict == "probe",
        token=token,
        wait=float(_text(wait)),
        state=state,
    )


def record(permit: Permit, error: ProviderError | None) -> str:
    """Report the outcome of a permitted call. Only retryable errors count as
    failures: an auth or bad-request answer proves the provider is up."""
    if permit.settled or not enabled():
        return permit.state
    permit.settled = True
    key = key_for(permit.provider, permit.model)
    try:
        if error is not None and error.code in RETRYABLE_CODES:
            cooldown = float(get_setting("CIRCUIT_COOLDOWN"))
            if error.retry_after:
                honoured = min(error.retry_after, float(get_setting("RETRY_AFTER_MAX")))
                cooldown = max(cooldown, honoured)
            state = redis().eval(
                _FAILURE,
                3,
                key,
                key + ":failures",
                INDEX,
                repr(time.time()),
                get_setting("CIRCUIT_WINDOW"),
                get_setting("CIRCUIT_FAILURES"),
                repr(cooldown),
                permit.token,
                permit.token,
                permit.provider,
                permit.model,
                _ttl(),
            )
        else:
            state = redis().eval(_SUCCESS, 2, key, key + ":failures", permit.token)
    except Exception as exc:
        logger.warning("Circuit breaker unavailable (%s): outcome not recorded", exc)
        return permit.state
    if _text(state) == OPEN and permit.state != OPEN:
        logger.warning("Circuit for %s/%s is open", permit.provider, permit.model)
    return _text(state)


def release(permit: Permit) -> None:
    """The permitted call never happened (quota refused, rate limited...)."""
    if permit.settled or not permit.probe:
        return
    permit.settled = True
    try:
        redis().eval(_RELEASE, 1, key_for(permit.provider, permit.model), permit.token)
    except Exception as exc:
        logger.warning("Circuit breaker unavailable (%s): probe not released", exc)


def state_of(provider: str, model: str) -> dict[str, Any]:
    """The circuit of provider+model as the diagnostics show it."""
    return _describe(provider, model, _read(key_for(provider, model)))


def states() -> dict[str, Any]:
    """Every circuit that has opened at least once (and not expired), for diagnostics.
    ``ok`` is False when Redis cannot be read."""
    try:
        connection = redis()
        keys = sorted(_text(k) for k in connection.smembers(INDEX))
        circuits = []
        for key in keys:
            data = _read(key)
            if not data:
                connection.srem(INDEX, key)
                continue
            provider, _sep, model = key.removeprefix(PREFIX).partition("|")
            circuits.append(_describe(provider, model, data))
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "circuits": []}
    return {"ok": True, "enabled": enabled(), "circuits": circuits}


def reset(provider: str, model: str) -> None:
    """Close a circuit by hand (operators, tests)."""
    key = key_for(provider, model)
    redis().delete(key, key + ":failures")


def _read(key: str) -> dict[str, str]:
    connection = redis()
    data = {_text(k): _text(v) for k, v in connection.hgetall(key).items()}
    failures = connection.zcard(key + ":failures")
    if data or failures:
        data["failures"] = str(failures)
    return data


def _describe(provider: str, model: str, data: dict[str, str]) -> dict[str, Any]:
    now = time.time()
    state = data.get("state") or CLOSED
    retry_in: float | None = None
    if state == OPEN:
        retry_in = max(0.0, float(data.get("open_until") or 0) - now)
    return {
        "provider": provider,
        "model": model,
        "state": state,
        "recent_failures": int(data.get("failures") or 0),
        "times_opened": int(data.get("times_opened") or 0),
        "opened_at": float(data["opened_at"]) if data.get("opened_at") else None,
        "retry_in": None if retry_in is None else round(retry_in, 1),
        "probing": state == HALF_OPEN and float(data.get("probe_until") or 0) > now,
    }


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
