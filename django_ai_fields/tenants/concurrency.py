"""Per-tenant cap on jobs running at once: a Redis semaphore with expiring slots.

A slot is a member of a sorted set scored by its expiry, taken and checked in
one Lua script, so workers on many machines share the cap; a slot of a killed
worker expires after JOB_TIMEOUT on its own.
"""

from __future__ import annotations

import time

from .. import queues
from ..conf import get_setting

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


def acquire(tenant: str, job_id: int, cap: int) -> bool:
    now = time.time()
    timeout = int(get_setting("JOB_TIMEOUT"))
    connection = queues.get_queue().connection
    taken = connection.eval(
        _ACQUIRE, 1, KEY.format(tenant=tenant), now, now + timeout, job_id, cap, timeout * 2
    )
    return bool(taken)


def release(tenant: str, job_id: int) -> None:
    queues.get_queue().connection.zrem(KEY.format(tenant=tenant), job_id)
