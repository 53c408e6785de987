"""Per-tenant cap on jobs running at once: a semaphore with expiring slots in the
shared state (Redis, or Django's cache).

A slot is a member of a sorted set scored by its expiry, taken and checked in
one atomic script, so workers on many machines share the cap (with a
local-memory cache, each process its own); a slot of a killed worker expires
after JOB_TIMEOUT on its own.
"""

from __future__ import annotations

import time

from ..conf import get_setting
from ..shared_state import Script, Values, store

KEY = "django_ai_fields:running:{tenant}"

_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[3]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[4]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
  redis.call('EXPIRE', KEYS[1], ARGV[5])
  return 1
end
return 0
"""


def _acquire_twin(values: Values, keys: list[str], *args: float | int) -> int:
    now, expires, member, cap, seconds = args
    slots = {m: at for m, at in (values.get(keys[0]) or {}).items() if at > float(now)}
    if str(member) not in slots and len(slots) >= int(cap):
        return 0
    values.set(keys[0], {**slots, str(member): float(expires)}, float(seconds))
    return 1


ACQUIRE = Script(_ACQUIRE, _acquire_twin)

_RELEASE = "return redis.call('ZREM', KEYS[1], ARGV[1])"


def _release_twin(values: Values, keys: list[str], member: int) -> int:
    slots = dict(values.get(keys[0]) or {})
    if slots.pop(str(member), None) is None:
        return 0
    values.set(keys[0], slots, None)
    return 1


RELEASE = Script(_RELEASE, _release_twin)


def acquire(tenant: str, job_id: int, cap: int) -> bool:
    now = time.time()
    timeout = int(get_setting("JOB_TIMEOUT"))
    key = KEY.format(tenant=tenant)
    return bool(store().run(ACQUIRE, [key], now, now + timeout, job_id, cap, timeout * 2))


def release(tenant: str, job_id: int) -> None:
    store().run(RELEASE, [KEY.format(tenant=tenant)], job_id)
