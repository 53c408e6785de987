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
from .models import OPEN_STATUSES, AIJob, Phase, Status
from .tenants import resolve_tenant

logger = logging.getLogger("django_ai_fields")


def request_jobs(
    instance: models.Model,
    fields: Sequence[AIFieldMixin],
    *,
    triggered_by: str,
    using: str | None = None,
    force: bool = False,
    enqueue_new: bool = True,
) -> list[AIJob]:
    """Create (or reuse) one open job per field and enqueue new ones on commit
    (``enqueue_new=False``: the caller enqueues them, e.g. in chunks)."""
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
    if created_ids and enqueue_new:
        transaction.on_commit(partial(enqueue_all, created_ids), using=using, robust=True)
    return jobs


def request_rows(
    instances: Sequence[models.Model],
    field: AIFieldMixin,
    *,
    triggered_by: str,
    using: str = "default",
    force: bool = True,
) -> list[AIJob]:
    """``request_jobs`` for one field of many rows (a backfill), not enqueued: rows
    without an open job get theirs in one INSERT; the others coalesce one by one."""
    if not instances:
        return []
    content_type = ContentType.objects.db_manager(using).get_for_model(instances[0])
    busy = set(
        AIJob.objects.using(using)
        .filter(
            content_type=content_type,
            field_name=field.name,
            function="field",
            status__in=OPEN_STATUSES,
            object_id__in=[str(obj.pk) for obj in instances],
        )
        .values_list("object_id", flat=True)
    )
    free = [obj for obj in instances if str(obj.pk) not in busy]
    new_jobs = [
        AIJob(
            content_type=content_type,
            object_id=str(obj.pk),
            field_name=field.name,
            tenant=resolve_tenant(obj),
            input_hash=field.input_hash(field.trigger_values(obj)),
            triggered_by=triggered_by,
            force=force,
        )
        for obj in free
    ]
    try:
        with transaction.atomic(using=using):
            created = AIJob.objects.using(using).bulk_create(new_jobs)
    except IntegrityError:  # a concurrent save opened a job for one of the rows
        busy.update(str(obj.pk) for obj in free)
        created = []
    for job in created:
        signals.job_requested.send(sender=AIJob, job=job)
    by_row = {job.object_id: job for job in created}
    for obj in instances:
        if str(obj.pk) in busy:
            (job,) = request_jobs(
                obj, [field], triggered_by=triggered_by, using=using, force=force, enqueue_new=False
            )
            by_row[str(obj.pk)] = job
    return [by_row[str(obj.pk)] for obj in instances]


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
    open_jobs = (
        AIJob.objects.using(using)
        .filter(**target, function="field", status__in=OPEN_STATUSES)
        .exclude(phase=Phase.BATCH)  # its request is with the provider already
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
    """Hand jobs to a drain (drains.py: one RQ job runs many of them at once);
    on a Redis failure they stay pending. Returns how many were handed over."""
    from .drains import hand_to_drain

    return hand_to_drain(job_ids) if job_ids else 0


def enqueue_chunks(job_ids: Sequence[int]) -> int:
    """Enqueue jobs as chunk jobs of CHUNK_SIZE (chunks.py: their provider calls run
    concurrently). Returns how many jobs reached the queue; after the first failure
    (Redis down) the rest stay pending for the sweep."""
    size = max(1, int(get_setting("CHUNK_SIZE")))
    for start in range(0, len(job_ids), size):
        if not enqueue_chunk(job_ids[start : start + size]):
            return start
    return len(job_ids)


def enqueue_chunk(job_ids: Sequence[int]) -> bool:
    from .chunks import chunk_timeout, run_chunk

    try:
        rq_job = get_queue().enqueue(
            run_chunk, list(job_ids), job_timeout=chunk_timeout(len(job_ids))
        )
    except Exception as exc:  # Redis down, misconfigured queue...: never lose the jobs
        logger.warning("%s AI jobs stay pending: enqueue failed (%s)", len(job_ids), exc)
        AIJob.objects.filter(pk__in=job_ids, status=Status.QUEUED).update(status=Status.PENDING)
        return False
    AIJob.objects.filter(pk__in=job_ids, status__in=OPEN_STATUSES).update(
        status=Status.QUEUED, enqueued_at=timezone.now(), rq_job_id=rq_job.id
    )
    return True


def enqueue(job_id: int, delay: float = 0) -> bool:
    """Put a job on the RQ queue (now: to a drain; later: its own RQ job, scheduled);
    on any Redis failure leave it pending."""
    from .engine import run_job

    if delay <= 0:
        return enqueue_all([job_id]) == 1
    try:
        timeout = int(get_setting("JOB_TIMEOUT"))
        rq_job = get_queue().enqueue_in(
            timedelta(seconds=delay), run_job, job_id, job_timeout=timeout
        )
    except Exception as exc:  # Redis down, misconfigured queue...: never lose the job
        logger.warning("AI job %s stays pending: enqueue failed (%s)", job_id, exc)
        AIJob.objects.filter(pk=job_id, status=Status.QUEUED).update(status=Status.PENDING)
        return False
    AIJob.objects.filter(pk=job_id, status__in=OPEN_STATUSES).update(
        status=Status.QUEUED, enqueued_at=timezone.now(), rq_job_id=rq_job.id
    )
    return True
