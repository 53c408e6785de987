"""The entry points as one task of Django's task framework (``TASK_BACKEND = "django"``):
``django.tasks`` on Django 6.0+, the ``django-tasks`` backport on 5.2.

``wake`` runs the entry point ``task`` names (one of tasks.ENTRY_POINTS, never any
other path) with its arguments and the wake-up's facts (dispatch/backends/wakeups.py).
dispatch.backends.django_tasks enqueues it by its dotted path.
"""

from __future__ import annotations

from typing import Any

from ..conf import get_setting
from ..dispatch.backends import wakeups
from ..dispatch.backends.django_tasks import framework
from .tasks import ENTRY_POINTS


@framework().task(
    backend=get_setting("DJANGO_TASKS_BACKEND"), queue_name=get_setting("DJANGO_TASKS_QUEUE")
)
def wake(task: str, args: list[Any], kwargs: dict[str, Any], wakeup: dict[str, Any]) -> object:
    """Run one wake-up: the entry point ``task`` (a path of ENTRY_POINTS)."""
    function = ENTRY_POINTS.get(task)
    if function is None:
        raise ValueError(f"{task!r} is not an entry point of django_ai_fields")
    return wakeups.run(function, args, {**kwargs, wakeups.WAKEUP: wakeup})
