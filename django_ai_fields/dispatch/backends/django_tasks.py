"""Django's task framework: ``django.tasks`` on Django 6.0+, the ``django-tasks``
backport on 5.2, with whatever backend the project configures in ``TASKS``
(``django_tasks_db.DatabaseBackend`` runs with no Redis at all: ``manage.py db_worker``).

Every wake-up is one task, ``jobs.django_tasks.wake``, given the entry point's dotted
path and arguments. Delays use ``run_after`` where the backend supports it; a backend
that cannot delay gets the task at once and the worker holds it until its time
(wakeups.hold_until). Live wake-ups get ``TASK_PRIORITIES["live"]`` (10 by default)
where the backend supports priorities. The framework cannot be asked about one task
in general, so the wake-up ledger (wakeups.py) answers which still wait, and dead
runs end with their lease (JOB_TIMEOUT).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.utils import timezone
from django.utils.module_loading import import_string

from ...conf import get_setting
from . import wakeups
from .base import NoWakeups, Wakeup

# The one task every wake-up is (jobs layer: imported by its path, as workers do).
WAKE = "django_ai_fields.jobs.django_tasks.wake"
# Priorities when TASK_PRIORITIES leaves them unset (django.tasks: higher runs first).
DEFAULT_PRIORITIES = {"live": 10, "backfill": 0}


def framework() -> Any:
    """``django.tasks`` (Django 6.0+), else the ``django_tasks`` backport; None without."""
    for name in ("django.tasks", "django_tasks"):
        with contextlib.suppress(ImportError):
            return __import__(name, fromlist=["task_backends"])
    return None


def task_backend() -> Any:
    tasks = framework()
    if tasks is None:
        raise RuntimeError("Django's task framework is unavailable (Django 6.0+ or django-tasks)")
    return tasks.task_backends[get_setting("DJANGO_TASKS_BACKEND")]


class DjangoTasksBackend(NoWakeups):
    name = "django"

    def send(self, wakeup: Wakeup) -> str:
        backend = task_backend()
        options: dict[str, Any] = {
            "backend": get_setting("DJANGO_TASKS_BACKEND"),
            "queue_name": get_setting("DJANGO_TASKS_QUEUE"),
        }
        if backend.supports_priority:
            wanted = (get_setting("TASK_PRIORITIES") or {}).get(wakeup.kind)
            options["priority"] = DEFAULT_PRIORITIES[wakeup.kind] if wanted is None else wanted
        if wakeup.delay > 0 and backend.supports_defer:
            options["run_after"] = timezone.now() + timedelta(seconds=wakeup.delay)
        task = import_string(WAKE).using(**options)
        # The framework names its tasks itself: the wake-up's own id travels with it.
        task_id = wakeup.task_id or _new_id()
        facts = wakeups.describe(wakeup, task_id)
        wakeups.note_sent(task_id, wakeup.delay)
        task.enqueue(wakeup.task, list(wakeup.args), wakeup.kwargs, facts)
        return task_id

    def current_task_id(self) -> str | None:
        return wakeups.running_task_id()

    def waiting_tasks(self, task_ids: Sequence[str]) -> set[str]:
        return wakeups.waiting(task_ids)

    def recently_failed(self, limit: int) -> list[str]:
        return []  # no registry of failed tasks in general: dead runs end with their lease

    def health(self) -> dict[str, Any]:
        backend = task_backend()
        report: dict[str, Any] = {
            "name": f"{get_setting('DJANGO_TASKS_BACKEND')}/{get_setting('DJANGO_TASKS_QUEUE')}",
            "backend_class": f"{type(backend).__module__}.{type(backend).__name__}",
            "waiting": None,
            "workers": None,  # the framework has no worker registry
        }
        if type(backend).__name__ == "DatabaseBackend":
            report.update(_database_backend_facts(backend))
        return report


def _new_id() -> str:
    import uuid

    return uuid.uuid4().hex


def _database_backend_facts(backend: Any) -> dict[str, Any]:
    """django-tasks-db's table: tasks ready to run, and the workers that took one in
    the last hour (it keeps no heartbeat: an idle worker is not seen)."""
    from django_tasks_db.models import DBTaskResult, get_date_max

    tasks = DBTaskResult.objects.filter(
        backend_name=backend.alias, queue_name=get_setting("DJANGO_TASKS_QUEUE")
    )
    ready = tasks.ready()
    # When the longest-waiting task became due: enqueued, or its run_after passed.
    due = [
        ready.filter(run_after=get_date_max())
        .order_by("enqueued_at")
        .values_list("enqueued_at", flat=True)
        .first(),
        ready.exclude(run_after=get_date_max())
        .order_by("run_after")
        .values_list("run_after", flat=True)
        .first(),
    ]
    oldest = min((moment for moment in due if moment is not None), default=None)
    recent = tasks.filter(started_at__gte=timezone.now() - timedelta(hours=1))
    seen = sorted({w for ids in recent.values_list("worker_ids", flat=True) for w in ids or ()})
    return {
        "waiting": ready.count(),
        "oldest_wakeup_at": oldest.isoformat() if oldest else None,
        "workers_seen_last_hour": [{"name": w, "state": "seen"} for w in seen],
    }
