"""Celery: the project's own Celery app (``proj/celery.py``), workers started with
``celery -A proj worker``.

Each entry point of jobs/tasks.py is a Celery task named by its dotted path
(jobs/celery_tasks.py registers them), so a project routes them with its own
``CELERY_TASK_ROUTES`` (``"django_ai_fields.*": {"queue": "ai"}``), or all to
``AI_FIELDS["CELERY_QUEUE"]``. Delays use ``countdown``; ``TASK_PRIORITIES`` gives
live and backfill wake-ups the priorities the broker understands (RabbitMQ:
higher first, with ``x-max-priority``; Redis: lower first). Celery cannot be asked
about one task, so the wake-up ledger (wakeups.py) answers which still wait, and the
sweep learns of dead runs from leases that time out (JOB_TIMEOUT), not from a
failed-task registry.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.utils.module_loading import import_string

from ...conf import get_setting
from . import wakeups
from .base import NoWakeups, Wakeup

# Seconds Celery's hard time limit adds to a task's own timeout (which raises first).
HARD_LIMIT_GRACE = 30
# Seconds ai_status and the health API wait for workers' answers to a ping.
PING_TIMEOUT = 1.0


def celery_app() -> Any:
    """``AI_FIELDS["CELERY_APP"]`` (a dotted path), else the app the project created
    (proj/celery.py): the current app of this thread, or, in a thread that has none
    (Celery keeps it per thread), the one app created to be current. None when there
    is none, or several."""
    path = get_setting("CELERY_APP")
    if path:
        return import_string(str(path).replace(":", "."))
    from celery import _state

    current = getattr(_state._tls, "current_app", None)
    if current is not None:
        return current
    created = [app for app in _state._get_active_apps() if app.set_as_current]
    return created[0] if len(created) == 1 else None


class CeleryBackend(NoWakeups):
    name = "celery"

    @property
    def app(self) -> Any:
        app = celery_app()
        if app is None:
            raise RuntimeError("no Celery app: create one in proj/celery.py or set CELERY_APP")
        return app

    def send(self, wakeup: Wakeup) -> str:
        from celery.utils import uuid

        task_id = wakeup.task_id or uuid()
        options: dict[str, Any] = {}
        if get_setting("CELERY_QUEUE"):
            options["queue"] = get_setting("CELERY_QUEUE")
        priority = (get_setting("TASK_PRIORITIES") or {}).get(wakeup.kind)
        if priority is not None:
            options["priority"] = priority
        if wakeup.delay > 0:
            options["countdown"] = wakeup.delay
        if wakeup.timeout:
            options["time_limit"] = wakeup.timeout + HARD_LIMIT_GRACE
        kwargs = {**wakeup.kwargs, wakeups.WAKEUP: wakeups.describe(wakeup, task_id)}
        wakeups.note_sent(task_id, wakeup.delay)
        self.app.send_task(
            wakeup.task, args=list(wakeup.args), kwargs=kwargs, task_id=task_id, **options
        )
        return task_id

    def current_task_id(self) -> str | None:
        return wakeups.running_task_id()

    def waiting_tasks(self, task_ids: Sequence[str]) -> set[str]:
        return wakeups.waiting(task_ids)

    def recently_failed(self, limit: int) -> list[str]:
        return []  # no registry of failed tasks: dead runs end with their lease

    def health(self) -> dict[str, Any]:
        app = self.app
        queue = get_setting("CELERY_QUEUE") or app.conf.task_default_queue
        with app.connection_for_read() as connection:
            connection.ensure_connection(max_retries=1)
            try:
                declared = connection.default_channel.queue_declare(queue, passive=True)
                waiting = declared.message_count
            except connection.channel_errors:  # no worker declared the queue yet
                waiting = 0
        replies = app.control.ping(timeout=PING_TIMEOUT) or []
        workers = [{"name": name, "state": "ok"} for reply in replies for name in reply]
        return {"name": queue, "waiting": waiting, "workers": workers}
