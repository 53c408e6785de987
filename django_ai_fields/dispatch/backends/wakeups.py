"""What Celery and Django's task framework need that RQ does itself.

On the sending side, ``describe`` is the wake-up's own facts, sent with it as the
task's ``WAKEUP`` keyword argument: its id (our drain ids included: a django.tasks
backend names its tasks itself), when it is due, its timeout. A ledger in the shared
state notes each wake-up sent until it starts, since neither queue can be asked about
one task: ``waiting`` is those still noted. A wake-up not started ``LOST_WAKEUP_AFTER``
seconds after its time is taken as lost and its jobs are handed over again (a
duplicate wake-up is harmless: the lease makes a job run once).

On the worker side, ``run`` starts every such task: it takes the wake-up off the
ledger, names it as the running task, holds it until its time (for a backend that
cannot delay), and bounds it by its timeout as RQ does (``JobTimeoutException`` by
SIGALRM, where the task runs on the main thread: Celery's prefork children, the
database worker), before calling the entry point.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from typing import Any, TypeVar

from ...conf import get_setting
from ...shared_state import store
from .base import Wakeup

R = TypeVar("R")

# The keyword argument holding the wake-up's facts (never reaches the entry point).
WAKEUP = "_wakeup"
LEDGER = "django_ai_fields:wakeup:{task_id}"

_running: ContextVar[str | None] = ContextVar("django_ai_fields_task", default=None)


def describe(wakeup: Wakeup, task_id: str) -> dict[str, Any]:
    facts: dict[str, Any] = {"id": task_id, "timeout": wakeup.timeout}
    if wakeup.delay > 0:
        facts["due"] = time.time() + wakeup.delay
    return facts


def note_sent(task_id: str, delay: float) -> None:
    seconds = delay + float(get_setting("LOST_WAKEUP_AFTER"))
    store().set(LEDGER.format(task_id=task_id), "1", seconds)


def waiting(task_ids: Sequence[str]) -> set[str]:
    state = store()
    unique = dict.fromkeys(task_ids)
    return {i for i in unique if state.get(LEDGER.format(task_id=i)) is not None}


def running_task_id() -> str | None:
    return _running.get()


def run(function: Callable[..., R], args: Sequence[Any], kwargs: dict[str, Any]) -> R:
    """Run an entry point for a wake-up (``kwargs`` may hold its ``WAKEUP`` facts)."""
    kwargs = dict(kwargs)
    facts = kwargs.pop(WAKEUP, None) or {}
    task_id = facts.get("id")
    token = _running.set(task_id)
    try:
        if task_id:
            with contextlib.suppress(Exception):  # the ledger is an optimisation
                store().delete(LEDGER.format(task_id=task_id))
        hold_until(facts.get("due"))
        with time_limit(facts.get("timeout")):
            return function(*args, **kwargs)
    finally:
        _running.reset(token)


def hold_until(due: float | None) -> None:
    """Sleep until ``due`` (a backend without delays ran the task early)."""
    if due is not None and due > time.time():
        time.sleep(due - time.time())


@contextlib.contextmanager
def time_limit(seconds: int | None) -> Iterator[None]:
    """RQ's own job timeout, where a signal can deliver it (the main thread)."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return
    from rq.timeouts import JobTimeoutException, UnixSignalDeathPenalty

    with UnixSignalDeathPenalty(int(seconds), JobTimeoutException):
        yield
