"""The task backends: RQ (``rq.py``, the default), Celery (``celery.py``) and Django's
task framework (``django_tasks.py``), chosen by ``AI_FIELDS["TASK_BACKEND"]``.

A backend only carries wake-ups ("drain now", "run this chunk", "run this job at T",
"sweep"): the ``AIJob`` table is the outbox, and leases, run tokens and the sweep make
every guarantee the app's own. So a backend is small: it sends a task by its dotted
path with JSON arguments (extra keyword arguments reach the task function unchanged),
says which task is running, what it knows of waiting and failed tasks, and how its
workers are. ``dispatch.backend`` is the one module that calls it.

Celery and Django's task framework run the same entry points as RQ (jobs/tasks.py),
through ``wakeups.run`` on the worker side.
"""

from __future__ import annotations

from ...conf import get_setting
from .base import NAMES, TaskBackend, Wakeup

_backends: dict[str, TaskBackend] = {}


def current() -> TaskBackend:
    """The configured backend (one instance per name and process)."""
    name = str(get_setting("TASK_BACKEND"))
    backend = _backends.get(name)
    if backend is None:
        backend = _backends[name] = _build(name)
    return backend


def _build(name: str) -> TaskBackend:
    if name == "rq":
        from .rq import RQBackend

        return RQBackend()
    if name == "celery":
        from .celery import CeleryBackend

        return CeleryBackend()
    if name == "django":
        from .django_tasks import DjangoTasksBackend

        return DjangoTasksBackend()
    raise ValueError(f"AI_FIELDS['TASK_BACKEND'] is {name!r}: use one of {', '.join(NAMES)}.")


__all__ = ["NAMES", "TaskBackend", "Wakeup", "current"]
