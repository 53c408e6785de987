"""The task backend (RQ, through django-rq): the one place that puts a task on the
queue, schedules a periodic task once, and reads what the queue knows of a task.

A task is named by its dotted path (``queues.RUN_DRAIN`` ...) and carries only ids,
and its job context (plain JSON, dispatch/context.py) as the keyword ``context``:
the ``AIJob`` table is the durable outbox, the queue only wakes a worker up. Every
function here raises when the queue is unreachable; the callers decide what stays
pending.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from .. import queues

# Deletes a mark only if it still names this task (the one that set it).
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end"
# RQ statuses of a task that will still run; any other (or none: gone) never will.
WAITING_STATES = frozenset({"queued", "scheduled", "deferred"})


def send(
    task: str,
    *args: Any,
    context: dict[str, Any] | None = None,
    delay: float = 0,
    task_id: str | None = None,
    at_front: bool = False,
    timeout: int | None = None,
    result_ttl: int | None = None,
) -> str:
    """Put ``task(*args, context=context)`` on the queue, now or in ``delay`` seconds;
    returns its id. Without a context the task runs in the worker's own."""
    queue = queues.get_queue()
    options: dict[str, Any] = {"job_id": task_id, "job_timeout": timeout, "at_front": at_front}
    if result_ttl is not None:
        options["result_ttl"] = result_ttl
    call = {"args": args, "kwargs": {"context": context} if context else {}}
    if delay > 0:  # at_front then applies when the scheduler moves it onto the queue
        return str(queue.enqueue_in(timedelta(seconds=delay), task, **call, **options).id)
    return str(queue.enqueue(task, **call, **options).id)


def current_task_id() -> str | None:
    """The id of the task running this code (None outside a worker)."""
    from rq import get_current_job

    rq_job = get_current_job()
    return None if rq_job is None else str(rq_job.id)


# -- marks: at most one of a kind waiting ---------------------------------------------


def set_mark(key: str, value: str, seconds: int) -> bool:
    """Set ``key`` unless it exists (SET NX, expiring); True when this call set it."""
    return bool(queues.redis().set(key, value, nx=True, ex=seconds))


def read_mark(key: str) -> str | None:
    value = queues.redis().get(key)
    return value.decode() if isinstance(value, bytes) else value


def release_mark(key: str, owner: str | None = None) -> None:
    """Delete ``key``, only while it still names ``owner`` (the running task by default)."""
    owner = owner or current_task_id()
    if owner is None:
        queues.redis().delete(key)
    else:
        queues.redis().eval(_RELEASE, 1, key, owner)


def schedule_once(key: str, interval: int, task: str, **options: Any) -> bool:
    """Schedule ``task`` in ``interval`` seconds unless the mark ``key`` says a run is
    scheduled already. True when this call scheduled it. The periodic task releases
    the mark first (``release_mark``), so late or extra runs never multiply it."""
    if not set_mark(key, "-", interval * 3):
        return False
    task_id = send(task, delay=interval, result_ttl=interval, **options)
    queues.redis().set(key, task_id, xx=True, ex=interval * 3)
    return True


def release_own_mark(key: str) -> None:
    """Called first by a periodic task: free its mark so it can schedule the next run."""
    with contextlib.suppress(Exception):
        release_mark(key)


# -- what the queue knows of a task -----------------------------------------------------


def waiting_tasks(task_ids: Sequence[str]) -> set[str]:
    """Those of ``task_ids`` the queue will still run: queued, scheduled or deferred,
    and not taken off the queue by a worker that died before starting them (RQ's
    intermediate queue)."""
    from rq.job import Job

    queue = queues.get_queue()
    connection = queue.connection
    key = getattr(queue, "intermediate_queue_key", None)  # rq >= 2
    taken = {_text(i) for i in connection.lrange(key, 0, -1)} if key else set()
    pipe = connection.pipeline()
    for task_id in task_ids:
        pipe.hget(Job.key_for(task_id), "status")
    states = pipe.execute()
    return {
        task_id
        for task_id, state in zip(task_ids, states, strict=True)
        if _text(state) in WAITING_STATES and task_id not in taken
    }


def recently_failed(limit: int) -> list[str]:
    """Ids of the ``limit`` most recent tasks the queue marked failed (a killed work
    horse, an exception that escaped the task), newest first."""
    registry = queues.get_queue().failed_job_registry
    return [_text(i) for i in registry.connection.zrevrange(registry.key, 0, limit - 1)]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
