"""Periodic RQ jobs that exactly one run keeps alive, whatever the number of workers.

A Redis mark names the RQ job of the scheduled run. ``schedule_once`` schedules
a run only when no mark exists (one SET NX); a periodic job calls
``release_mark`` first, which deletes the mark only if it still names that run,
so late or extra runs never multiply the schedule. Used by the sweep and by the
provider batch poll.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from rq import get_current_job

from .. import queues

# Deletes the mark only if it still names this run's RQ job.
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end"


def release_mark(key: str) -> None:
    """Called first by a periodic job: free the mark so it can schedule the next run."""
    with contextlib.suppress(Exception):
        rq_job = get_current_job()
        connection = queues.get_queue().connection
        if rq_job is None:  # called directly
            connection.delete(key)
        else:
            connection.eval(_RELEASE, 1, key, rq_job.id)


def schedule_once(
    key: str, interval: int, func: Callable[[], Any] | str, **options: Any
) -> bool:
    """Schedule ``func`` (a callable or its dotted path) in ``interval`` seconds
    unless the mark says a run is scheduled already. True when this call scheduled
    it; raises on Redis errors."""
    queue = queues.get_queue()
    connection = queue.connection
    if not connection.set(key, "-", nx=True, ex=interval * 3):
        return False
    rq_job = queue.enqueue_in(timedelta(seconds=interval), func, result_ttl=interval, **options)
    connection.set(key, rq_job.id, xx=True, ex=interval * 3)
    return True
