"""The outbox: AIJob rows written in the save's transaction, enqueued on commit.

If Redis is unreachable at commit the job simply stays ``pending``; the sweep
(``ai_requeue`` or the worker's periodic run) enqueues it later.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from . import signals
from .conf import get_setting
from .fields import AIFieldMixin
from .models import OPEN_STATUSES, AIJob, Status
from .tenants import resolve_tenant

logger = logging.getLogger("django_ai_fields")


def request_jobs(
    instance: models.Model,
    fields: Sequence[AIFieldMixin],
    *,
    triggered_by: str,
    using: str | None = None,
    force: bool = False,
) -> list[AIJob]:
    """Create (or reuse) one open job per field and enqueue new ones on commit."""
    using = using or instance._state.db or "default"
    content_type = ContentType.objects.db_manager(using).get_for_model(instance)
    tenant = resolve_tenant(instance)
    jobs, created_ids = [], []
    for field in fields:
        job, created = _reuse_or_create(
            content_type,
            str(instance.pk),
            field,
            tenant=tenant,
            input_hash=field.input_hash(field.trigger_values(instance)),
            triggered_by=triggered_by,
            force=force,
            using=using,
        )
        if created:
            created_ids.append(job.pk)
        signals.job_requested.send(sender=AIJob, job=job)
        jobs.append(job)
    if created_ids:
        transaction.on_commit(partial(enqueue_all, created_ids), using=using, robust=True)
    return jobs


def _reuse_or_create(
    content_type: ContentType,
    object_id: str,
    field: AIFieldMixin,
    *,
    using: str,
    **values: object,
) -> tuple[AIJob, bool]:
    """Coalesce into the open job for this row and field, or start a new one."""
    target = {"content_type": content_type, "object_id": object_id, "field_name": field.name}
    open_jobs = AIJob.objects.using(using).filter(
        **target, function="field", status__in=OPEN_STATUSES
    )
    updates = dict(values)
    if not values.get("force"):
        updates.pop("force")  # an explicit regenerate's force flag survives later saves
    if open_jobs.update(**updates, updated_at=timezone.now()):
        return open_jobs.get(), False
    try:
        with transaction.atomic(using=using):
            return AIJob.objects.using(using).create(**target, **values), True
    except IntegrityError:
        # A concurrent save created the open job between our UPDATE and INSERT.
        open_jobs.update(**updates, updated_at=timezone.now())
        return open_jobs.get(), False


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


def enqueue_all(job_ids: Sequence[int]) -> int:
    """Enqueue jobs in order; after the first failure (Redis down) leave the rest
    pending at once rather than waiting out a connection timeout for each."""
    for done, job_id in enumerate(job_ids):
        if not enqueue(job_id):
            return done
    return len(job_ids)


def enqueue(job_id: int, delay: float = 0) -> bool:
    """Put a job on the RQ queue; on any Redis failure leave it pending."""
    from .engine import run_job

    try:
        queue = get_queue()
        timeout = int(get_setting("JOB_TIMEOUT"))
        if delay > 0:
            rq_job = queue.enqueue_in(
                timedelta(seconds=delay), run_job, job_id, job_timeout=timeout
            )
        else:
            rq_job = queue.enqueue(run_job, job_id, job_timeout=timeout)
    except Exception as exc:  # Redis down, misconfigured queue...: never lose the job
        logger.warning("AI job %s stays pending: enqueue failed (%s)", job_id, exc)
        AIJob.objects.filter(pk=job_id, status=Status.QUEUED).update(status=Status.PENDING)
        return False
    AIJob.objects.filter(pk=job_id, status__in=OPEN_STATUSES).update(
        status=Status.QUEUED, enqueued_at=timezone.now(), rq_job_id=rq_job.id
    )
    return True
