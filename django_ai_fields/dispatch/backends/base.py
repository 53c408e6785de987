"""What a task backend is: the ``Wakeup`` it sends and the ``TaskBackend`` protocol
(see __init__.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

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

    @property
    def can_wake(self) -> bool:
        """Whether wake / wait_for_wake reach a running task that waits (only RQ's
        do, and not in a burst worker, which exits once the queue is empty)."""

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

    def wake(self, key: str) -> None:
        """Signal the task blocked in ``wait_for_wake(key)`` (kept a while if none is)."""

    def wait_for_wake(self, key: str, seconds: float) -> bool:
        """Block up to ``seconds`` for a ``wake(key)``; True when one came."""

    def others_waiting(self) -> bool:
        """Whether tasks wait on the queue for a worker."""


class NoWakeups:
    """For a backend whose running tasks cannot be woken: drains do not linger."""

    can_wake = False

    def wake(self, key: str) -> None:
        return None

    def wait_for_wake(self, key: str, seconds: float) -> bool:
        return False

    def others_waiting(self) -> bool:
        return False
