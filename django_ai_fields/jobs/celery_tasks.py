"""The entry points as Celery tasks (``AI_FIELDS["TASK_BACKEND"] = "celery"``).

Each task of tasks.ENTRY_POINTS is registered with every Celery app under its dotted
path (``django_ai_fields.jobs.tasks.run_drain`` ...), the name dispatch sends it by,
so a project's ``CELERY_TASK_ROUTES`` can route them. Imported by the app config when
Celery is the backend. Results are not stored (the ``AIJob`` row is the result), and
a wake-up is acknowledged once it ran (``acks_late``): the broker gives a dead
worker's wake-ups to another; running one twice is harmless (the lease).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import shared_task

from ..dispatch.backends import wakeups
from .tasks import ENTRY_POINTS


def _as_task(function: Callable[..., object]) -> Callable[..., object]:
    def run(*args: Any, **kwargs: Any) -> object:
        return wakeups.run(function, args, kwargs)

    run.__name__ = run.__qualname__ = function.__name__
    run.__doc__ = function.__doc__
    return run


TASKS = {
    path: shared_task(name=path, ignore_result=True, acks_late=True)(_as_task(function))
    for path, function in ENTRY_POINTS.items()
}
