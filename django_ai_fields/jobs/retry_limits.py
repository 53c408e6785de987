"""Bounds on manual retries of one job (JSON API, admin action), in the shared state.

A user who may retry jobs could otherwise loop a failing job (each retry is
MAX_ATTEMPTS provider calls, billed). ``RETRY_COOLDOWN`` seconds must pass
between two manual retries of a job and at most ``MAX_RETRIES_PER_HOUR`` happen
in an hour; both are checked and taken in one atomic script, so concurrent requests
cannot slip past. Trouble with the shared state lets the retry through (the job
itself is bounded by MAX_ATTEMPTS).
"""

from __future__ import annotations

import logging
import time

from ..conf import get_setting
from ..shared_state import Script, Values, store

logger = logging.getLogger("django_ai_fields")

PREFIX = "django_ai_fields:manual_retry:"

# KEYS: the job's sorted set of retry times. ARGV: now, cooldown, cap; the window is
# an hour (MAX_RETRIES_PER_HOUR). Returns "0" when taken, else the seconds until a
# retry would be allowed.
_TAKE = """
local now, cooldown, cap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 3600)
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if cooldown > 0 and last[2] and now - tonumber(last[2]) < cooldown then
  return tostring(cooldown - (now - tonumber(last[2])))
end
if cap > 0 and redis.call('ZCARD', KEYS[1]) >= cap then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return tostring(tonumber(first[2]) + 3600 - now)
end
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('EXPIRE', KEYS[1], 3600)
return '0'
"""
HOUR = 3600


def _take_twin(values: Values, keys: list[str], now: str, cooldown: float, cap: int) -> str:
    moment = float(now)
    times = sorted(t for t in values.get(keys[0]) or () if t > moment - HOUR)
    if cooldown > 0 and times and moment - times[-1] < cooldown:
        return repr(cooldown - (moment - times[-1]))
    if cap > 0 and len(times) >= cap:
        return repr(times[0] + HOUR - moment)
    values.set(keys[0], [*times, moment], HOUR)
    return "0"


TAKE = Script(_TAKE, _take_twin)


def take(job_id: int) -> float:
    """Count one manual retry of the job: 0 when allowed, else the seconds to wait."""
    cooldown = float(get_setting("RETRY_COOLDOWN") or 0)
    cap = int(get_setting("MAX_RETRIES_PER_HOUR") or 0)
    if cooldown <= 0 and cap <= 0:
        return 0.0
    try:
        wait = store().run(TAKE, [f"{PREFIX}{job_id}"], repr(time.time()), cooldown, cap)
    except Exception as exc:
        logger.warning("Retry limiter unavailable (%s): retry allowed", exc)
        return 0.0
    return max(0.0, float(wait))
