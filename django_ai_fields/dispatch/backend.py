"""The task backend: the one place that puts a task on the queue, schedules a
periodic task once, and reads what the queue knows of a task.

Which queue is ``AI_FIELDS["TASK_BACKEND"]``'s: RQ (the default), Celery or Django's
task framework (backends/). A task is named by its dotted path (``queues.RUN_DRAIN``
...) and carries only ids, JSON keyword arguments and its job context (plain JSON,
dispatch/context.py) as the keyword ``context``: the ``AIJob`` table is the durable
outbox, the queue only wakes a worker up. The marks (at most one of a kind waiting)
live in the shared state (shared_state/: Redis, or Django's cache). Every function
here raises when the queue or the state is unreachable; the callers decide what
stays pending.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from ..shared_state import Script, Values, store
from . import backends
from .backends.base import Wakeup


def send(
    task: str,
    *args: Any,
    context: dict[str, Any] | None = None,
    delay: float = 0,
    task_id: str | None = None,
    at_front: bool = False,
    timeout: int | None = None,
    result_ttl: int | None = None,
    **kwargs: Any,
) -> str:
    """Put ``task(*args, **kwargs)`` on the queue, now or in ``delay`` seconds; returns
    its id. ``kwargs`` (JSON values) reach the task function on every backend; the
    ``context`` too, as a keyword of that name (without one the task runs in the
    worker's own context)."""
    if context:
        kwargs["context"] = context
    wakeup = Wakeup(task, args, kwargs, delay, task_id, at_front, timeout, result_ttl)
    return backends.current().send(wakeup)


def current_task_id() -> str | None:
    """The id of the task running this code (None outside a worker)."""
    return backends.current().current_task_id()


# -- marks: at most one of a kind waiting ---------------------------------------------


def set_mark(key: str, value: str, seconds: int) -> bool:
    """Set ``key`` unless it exists (expiring); True when this call set it."""
    return store().add(key, value, seconds)


def marks_shared() -> bool:
    """True when every process sees the marks (Redis, a shared cache); a local-memory
    store's are its own process's alone."""
    return bool(store().scope != "process")


def read_mark(key: str) -> str | None:
    return store().get(key)


def release_mark(key: str, owner: str | None = None) -> None:
    """Delete ``key``, only while it still names ``owner`` (the running task by default)."""
    owner = owner or current_task_id()
    if owner is None:
        store().delete(key)
    else:
        store().delete_if(key, owner)


_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""


def _renew_twin(values: Values, keys: list[str], value: str, ms: int) -> int:
    if values.get(keys[0]) != value:
        return 0
    values.set(keys[0], value, int(ms) / 1000)
    return 1


RENEW = Script(_RENEW, _renew_twin)


def renew_mark(key: str, value: str, seconds: float) -> bool:
    """Give ``key`` ``seconds`` more to live while it still holds ``value``."""
    return bool(store().run(RENEW, [key], value, max(1, int(seconds * 1000))))


_SWAP = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""


def _swap_twin(values: Values, keys: list[str], old: str, new: str, ms: int) -> int:
    if values.get(keys[0]) != old:
        return 0
    values.set(keys[0], new, int(ms) / 1000)
    return 1


SWAP = Script(_SWAP, _swap_twin)


def swap_mark(key: str, old: str, new: str, seconds: float) -> bool:
    """Set ``key`` to ``new`` (for ``seconds``) only while it holds ``old``."""
    return bool(store().run(SWAP, [key], old, new, max(1, int(seconds * 1000))))


def schedule_once(key: str, interval: int, task: str, **options: Any) -> bool:
    """Schedule ``task`` in ``interval`` seconds unless the mark ``key`` says a run is
    scheduled already. True when this call scheduled it. The periodic task releases
    the mark first (``release_mark``), so late or extra runs never multiply it."""
    if not set_mark(key, "-", interval * 3):
        return False
    task_id = send(task, delay=interval, result_ttl=interval, **options)
    store().replace(key, task_id, interval * 3)
    return True


def release_own_mark(key: str) -> None:
    """Called first by a periodic task: free its mark so it can schedule the next run."""
    with contextlib.suppress(Exception):
        release_mark(key)


# -- wake-ups for a running task (a drain that lingers: jobs/drains.py) -----------------


def can_wake() -> bool:
    """Whether the backend carries wake-ups to a running task (RQ: a Redis list it
    blocks on). Celery and django.tasks do not: their drains never linger."""
    return backends.current().can_wake


def wake(key: str) -> None:
    """Wake the task blocked on ``key`` (or the next one to block on it, soon)."""
    backends.current().wake(key)


def wait_for_wake(key: str, seconds: float) -> bool:
    """Block up to ``seconds`` for a ``wake(key)``; True when one came."""
    return backends.current().wait_for_wake(key, seconds)


def others_waiting() -> bool:
    """Whether tasks wait on the queue (a lingering drain then makes room for them)."""
    return backends.current().others_waiting()


# -- what the queue knows of a task -----------------------------------------------------


def waiting_tasks(task_ids: Sequence[str]) -> set[str]:
    """Those of ``task_ids`` the queue will still run (RQ: queued, scheduled or
    deferred, and not taken by a worker that died before starting them; Celery and
    django.tasks: sent and not started, for at most LOST_WAKEUP_AFTER past their time)."""
    return backends.current().waiting_tasks(task_ids)


def recently_failed(limit: int) -> list[str]:
    """Ids of the ``limit`` most recent tasks the queue saw die (a killed work horse,
    an exception that escaped the task), newest first; [] from a backend that keeps
    no such record (Celery, django.tasks: the lease's timeout recovers their jobs)."""
    return backends.current().recently_failed(limit)


def queue_health() -> dict[str, Any]:
    """The backend's name, its workers and the wake-ups waiting; raises when down."""
    return {"backend": backends.current().name, **backends.current().health()}
