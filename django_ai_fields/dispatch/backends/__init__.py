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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ...conf import get_setting

NAMES = ("rq", "celery", "django")


@dataclass(frozen=True)
class Wakeup:
    """One task to send: ``task(*args, **kwargs)`` and how."""

    task: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    delay: float = 0
    task_id: str | None = None
    # Live work (drains, the sweep) goes ahead of backfills.
    at_front: bool = False
    timeout: int | None = None
    result_ttl: int | None = None

    @property
    def kind(self) -> str:
        """ "live" or "backfill": the key of ``TASK_PRIORITIES``."""
        return "live" if self.at_front else "backfill"


class TaskBackend(Protocol):
    name: str

    def send(self, wakeup: Wakeup) -> str:
        """Put the task on the queue; returns its id. Raises when the queue is down."""

    def current_task_id(self) -> str | None:
        """The id of the task running this code (None outside a worker)."""

    def waiting_tasks(self, task_ids: Sequence[str]) -> set[str]:
        """Those of ``task_ids`` the queue will still run."""

    def recently_failed(self, limit: int) -> list[str]:
        """Ids of tasks the queue saw die, newest first ([] when it cannot tell)."""

    def health(self) -> dict[str, Any]:
        """Workers seen and wake-ups waiting (``ok`` False when the queue is down)."""


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
