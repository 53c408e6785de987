"""System checks of the task backend and the shared state: a ``TASK_BACKEND`` that
cannot work is an error at start-up, not a save whose job never runs.
(Run by ``declare.checks.check_installation``, registered in ``AppConfig.ready()``.)"""

from __future__ import annotations

import importlib.util

from django.apps import apps
from django.conf import settings
from django.core import checks

from ...conf import get_setting
from .base import NAMES

SHARED_STATES = ("auto", "redis", "cache")


def task_backend_errors() -> list[checks.CheckMessage]:
    name = get_setting("TASK_BACKEND")
    if name not in NAMES:
        return [
            checks.Error(
                f"AI_FIELDS['TASK_BACKEND'] is {name!r}.",
                hint='Use "rq" (the default), "celery" or "django".',
                id="django_ai_fields.E021",
            )
        ]
    found = {"rq": _rq_errors, "celery": _celery_errors, "django": _django_tasks_errors}[name]()
    return found + _shared_state_errors()


def _rq_errors() -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    if not apps.is_installed("django_rq"):
        errors.append(
            checks.Error(
                "django_ai_fields needs django_rq in INSTALLED_APPS.",
                hint='Add "django_rq" to INSTALLED_APPS and define RQ_QUEUES, or set '
                'AI_FIELDS["TASK_BACKEND"] to "celery" or "django".',
                id="django_ai_fields.E011",
            )
        )
    queue = get_setting("QUEUE")
    if queue not in getattr(settings, "RQ_QUEUES", {}):
        errors.append(
            checks.Error(
                f"AI_FIELDS['QUEUE'] is {queue!r}, which RQ_QUEUES does not define.",
                hint=f"Add {queue!r} to RQ_QUEUES or set AI_FIELDS['QUEUE'] to a defined queue.",
                id="django_ai_fields.E010",
            )
        )
    if errors:
        return errors
    return _worker_class_warnings()


def _worker_class_warnings() -> list[checks.CheckMessage]:
    """W025: the configured RQ worker class may wait 60 s each time it stops."""
    from django_rq.workers import get_worker_class

    from ...rq_worker import stops_slowly

    try:
        worker_class = get_worker_class()
    except Exception:  # a WORKER_CLASS that does not import: rqworker itself says so
        return []
    if not stops_slowly(worker_class):
        return []
    name = f"{worker_class.__module__}.{worker_class.__qualname__}"
    return [
        checks.Warning(
            f"RQ workers of class {name} may wait 60 s each time they stop (a burst "
            "worker done, a warm shutdown on deploy): rq and redis-py >= 8.2 together.",
            hint='Set RQ = {"WORKER_CLASS": "django_ai_fields.rq_worker.Worker"} (RQ\'s '
            "forking worker, stopping at once; docs/deployment.md).",
            id="django_ai_fields.W025",
        )
    ]


def _celery_errors() -> list[checks.CheckMessage]:
    if importlib.util.find_spec("celery") is None:
        problem = "Celery is not installed"
        hint = "pip install 'django-ai-fields[celery]'"
    else:
        from .celery import celery_app

        try:
            app = celery_app()
        except ImportError as exc:
            app, problem = None, f"AI_FIELDS['CELERY_APP'] cannot be imported ({exc})"
        else:
            problem = "no Celery app was created"
        if app is not None:
            return []
        hint = (
            "Create the app in proj/celery.py and import it in proj/__init__.py "
            "(Celery's Django set-up), or name it in AI_FIELDS['CELERY_APP']."
        )
    return [
        checks.Error(
            f"AI_FIELDS['TASK_BACKEND'] is 'celery', but {problem}.",
            hint=hint,
            id="django_ai_fields.E022",
        )
    ]


def _django_tasks_errors() -> list[checks.CheckMessage]:
    from .django_tasks import framework

    tasks = framework()
    if tasks is None:
        return [
            _tasks_error(
                "Django's task framework is unavailable",
                "Use Django 6.0+, or "
                "pip install 'django-ai-fields[tasks]' (the django-tasks backport).",
            )
        ]
    alias, queue = get_setting("DJANGO_TASKS_BACKEND"), get_setting("DJANGO_TASKS_QUEUE")
    try:
        backend = tasks.task_backends[alias]
    except Exception as exc:
        return [
            _tasks_error(
                f"its TASKS backend {alias!r} cannot be used ({exc})",
                "Define it in TASKS or set AI_FIELDS['DJANGO_TASKS_BACKEND'].",
            )
        ]
    if backend.queues and queue not in backend.queues:
        return [
            _tasks_error(
                f"the TASKS backend {alias!r} has no queue {queue!r}",
                f"Add {queue!r} to its QUEUES or set AI_FIELDS['DJANGO_TASKS_QUEUE'].",
            )
        ]
    return []


def _tasks_error(problem: str, hint: str) -> checks.CheckMessage:
    return checks.Error(
        f"AI_FIELDS['TASK_BACKEND'] is 'django', but {problem}.",
        hint=hint,
        id="django_ai_fields.E023",
    )


def _shared_state_errors() -> list[checks.CheckMessage]:
    from ...shared_state import kind_configured, redis_store

    wanted = get_setting("SHARED_STATE")
    if wanted not in SHARED_STATES:
        return [
            checks.Error(
                f"AI_FIELDS['SHARED_STATE'] is {wanted!r}.",
                hint='Use "auto", "redis" or "cache".',
                id="django_ai_fields.E024",
            )
        ]
    if wanted == "redis" and not redis_store.configured():
        return [
            checks.Error(
                "AI_FIELDS['SHARED_STATE'] is 'redis', but no Redis is configured.",
                hint="Set AI_FIELDS['REDIS_URL'] (or use the RQ queue's Redis).",
                id="django_ai_fields.E024",
            )
        ]
    if kind_configured() == "cache":
        alias = get_setting("SHARED_STATE_CACHE")
        if alias not in getattr(settings, "CACHES", {"default": {}}):
            return [
                checks.Error(
                    f"AI_FIELDS['SHARED_STATE_CACHE'] is {alias!r}, which CACHES does not define.",
                    hint="Name a cache from CACHES.",
                    id="django_ai_fields.E024",
                )
            ]
    return []
