"""A circuit breaker per provider+model whose state is shared by all workers
(shared_state: Redis, or Django's cache).

closed --(CIRCUIT_FAILURES retryable failures within CIRCUIT_WINDOW, no success
between)--> open --(CIRCUIT_COOLDOWN elapsed)--> half-open: exactly one caller
gets the probe (taken atomically in Lua); its success closes the circuit, its
failure opens it again. A probe whose worker died frees itself after the
provider's TIMEOUT (+5 s). Every transition is one atomic script (Lua in Redis, its
Python twin under a lock in the cache), so no two workers ever both see "I may
probe" (pybreaker's per-process state would let each worker probe, and reset on
every new instance). With a local-memory cache the state is each process's own.

Trouble with the shared state never blocks a call: the breaker then lets everything
through.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from ..conf import get_setting
from ..providers.base import RETRYABLE_CODES, ProviderError
from ..shared_state import Script, Values, store

logger = logging.getLogger("django_ai_fields")

PREFIX = "django_ai_fields:circuit:"
INDEX = "django_ai_fields:circuits"

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
# Seconds the list of circuits is kept by a store that expires everything (the cache).
INDEX_SECONDS = 30 * 86400

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


def _allow_twin(values: Values, keys: list[str], now: str, probe_ttl: str, token: str) -> Any:
    circuit = dict(values.get(keys[0]) or {})
    state, moment = circuit.get("state"), float(now)
    if not state or state == CLOSED:
        return [CLOSED, "0"]
    if state == OPEN:
        reopen = float(circuit.get("open_until") or 0)
        if moment < reopen:
            return [OPEN, repr(reopen - moment)]
    else:
        probe_until = float(circuit.get("probe_until") or 0)
        if moment < probe_until:
            return [HALF_OPEN, repr(probe_until - moment)]
    circuit.update(state=HALF_OPEN, probe=token, probe_until=repr(moment + float(probe_ttl)))
    values.set(keys[0], circuit, None)
    return ["probe", "0"]


ALLOW = Script(_ALLOW, _allow_twin)

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


def _failure_twin(values: Values, keys: list[str], *args: Any) -> str:
    now, window, threshold, cooldown, token, member, provider, model, ttl = args
    circuit = dict(values.get(keys[0]) or {})
    state, moment = circuit.get("state") or CLOSED, float(now)

    def open_circuit() -> str:
        circuit.update(
            state=OPEN,
            open_until=repr(moment + float(cooldown)),
            opened_at=repr(moment),
            probe="",
            probe_until="0",
            provider=provider,
            model=model,
            times_opened=str(int(circuit.get("times_opened") or 0) + 1),
        )
        values.set(keys[0], circuit, float(ttl))
        values.delete(keys[1])
        values.set(keys[2], sorted({*(values.get(keys[2]) or ()), keys[0]}), INDEX_SECONDS)
        return OPEN

    if state == HALF_OPEN:
        return open_circuit() if circuit.get("probe") == token else state
    if state == OPEN:
        return state
    failures = {
        name: at
        for name, at in {**(values.get(keys[1]) or {}), member: moment}.items()
        if at > moment - float(window)
    }
    values.set(keys[1], failures, float(ttl))
    return open_circuit() if len(failures) >= int(threshold) else CLOSED


FAILURE = Script(_FAILURE, _failure_twin)

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


def _success_twin(values: Values, keys: list[str], token: str) -> str:
    circuit = dict(values.get(keys[0]) or {})
    state = circuit.get("state") or CLOSED
    if state == HALF_OPEN:
        if circuit.get("probe") != token:
            return state
        circuit.update(state=CLOSED, probe="", probe_until="0")
        values.set(keys[0], circuit, None)
    elif state == OPEN:
        return state
    values.delete(keys[1])
    return CLOSED


SUCCESS = Script(_SUCCESS, _success_twin)

# KEYS[1] state hash. ARGV: token. An unused probe goes back for the next caller.
_RELEASE = """
if redis.call('HGET', KEYS[1], 'state') == 'half_open'
   and redis.call('HGET', KEYS[1], 'probe') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'probe', '', 'probe_until', '0')
end
return 1
"""


def _release_twin(values: Values, keys: list[str], token: str) -> int:
    circuit = dict(values.get(keys[0]) or {})
    if circuit.get("state") == HALF_OPEN and circuit.get("probe") == token:
        circuit.update(probe="", probe_until="0")
        values.set(keys[0], circuit, None)
    return 1


RELEASE = Script(_RELEASE, _release_twin)

# KEYS[1] state hash, KEYS[2] failure times -> the hash's fields and values, flat, and
# "failures" with their count (nothing when the circuit never failed).
_READ = """
local data = redis.call('HGETALL', KEYS[1])
local failures = redis.call('ZCARD', KEYS[2])
if #data > 0 or failures > 0 then
  table.insert(data, 'failures')
  table.insert(data, tostring(failures))
end
return data
"""


def _read_twin(values: Values, keys: list[str]) -> list[str]:
    circuit, failures = values.get(keys[0]) or {}, values.get(keys[1]) or {}
    flat = [item for pair in circuit.items() for item in pair]
    return [*flat, "failures", str(len(failures))] if circuit or failures else flat


READ = Script(_READ, _read_twin)

# KEYS[1] index. ARGV: circuits to forget. -> the circuits left.
_INDEX = """
for _, key in ipairs(ARGV) do redis.call('SREM', KEYS[1], key) end
return redis.call('SMEMBERS', KEYS[1])
"""


def _index_twin(values: Values, keys: list[str], *gone: str) -> list[str]:
    left = sorted(set(values.get(keys[0]) or ()) - set(gone))
    if gone:
        values.set(keys[0], left, INDEX_SECONDS)
    return left


INDEX_SCRIPT = Script(_INDEX, _index_twin)


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
        verdict, wait = store().run(
            ALLOW, [key_for(provider, model)], repr(time.time()), repr(probe_ttl), token
        )
    except Exception as exc:  # the shared state is down: never block a call on the breaker
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
            state = store().run(
                FAILURE,
                [key, key + ":failures", INDEX],
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
            state = store().run(SUCCESS, [key, key + ":failures"], permit.token)
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
        store().run(RELEASE, [key_for(permit.provider, permit.model)], permit.token)
    except Exception as exc:
        logger.warning("Circuit breaker unavailable (%s): probe not released", exc)


def state_of(provider: str, model: str) -> dict[str, Any]:
    """The circuit of provider+model as the diagnostics show it."""
    return _describe(provider, model, _read(key_for(provider, model)))


def states() -> dict[str, Any]:
    """Every circuit that has opened at least once (and not expired), for diagnostics.
    ``ok`` is False when the shared state cannot be read."""
    try:
        circuits, gone = [], []
        for key in sorted(store().run(INDEX_SCRIPT, [INDEX])):
            data = _read(key)
            if not data:
                gone.append(key)
                continue
            provider, _sep, model = key.removeprefix(PREFIX).partition("|")
            circuits.append(_describe(provider, model, data))
        if gone:
            store().run(INDEX_SCRIPT, [INDEX], *gone)
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "circuits": []}
    return {"ok": True, "enabled": enabled(), "circuits": circuits}


def reset(provider: str, model: str) -> None:
    """Close a circuit by hand (operators, tests)."""
    key = key_for(provider, model)
    store().delete(key, key + ":failures")


def _read(key: str) -> dict[str, str]:
    flat = store().run(READ, [key, key + ":failures"])
    return dict(zip(flat[::2], flat[1::2], strict=True))


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
