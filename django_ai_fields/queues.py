"""The RQ queue and the one Redis handle every part shares.

``get_queue()`` is the configured queue (``AI_FIELDS["QUEUE"]``), built once per
configuration and process; ``redis()`` is its connection, used by the circuit
breaker, the rate limiter, the tenants' concurrency caps and the periodic jobs'
marks. Nothing here imports the rest of the package (only conf), so any layer may
use it; a lower layer starts a task by its dotted path (``RUN_JOB`` ...), never by
importing the jobs layer.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from .conf import get_setting

# The RQ entry points, by dotted path (RQ imports them in the worker).
RUN_JOB = "django_ai_fields.jobs.tasks.run_job"
RUN_CHUNK = "django_ai_fields.jobs.tasks.run_chunk"
RUN_DRAIN = "django_ai_fields.jobs.tasks.run_drain"
PERIODIC_SWEEP = "django_ai_fields.jobs.tasks.periodic_sweep"
PERIODIC_POLL = "django_ai_fields.jobs.tasks.periodic_poll"

_queues: dict[tuple[str, str], Any] = {}


def get_queue() -> Any:
    """The configured RQ queue, built once per configuration and process:
    django_rq.get_queue() opens a new Redis connection pool on every call."""
    import django_rq

    name = get_setting("QUEUE")
    key = (name, repr(getattr(settings, "RQ_QUEUES", {}).get(name)))
    queue = _queues.get(key)
    if queue is None:
        # commit_mode="auto": we already call enqueue from on_commit ourselves.
        queue = _queues[key] = django_rq.get_queue(name, commit_mode="auto")
    return queue


def redis() -> Any:
    """The Redis connection of the configured queue."""
    return get_queue().connection
