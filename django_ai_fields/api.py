"""The Python API: ask for a fresh value, look at the latest job."""

from __future__ import annotations

from functools import partial
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import models, transaction

from . import signals
from .engine import run_job
from .fields import ai_fields_of, get_ai_field
from .functions import get_function, json_safe
from .models import AIJob
from .outbox import enqueue, request_jobs


def regenerate(
    instance: models.Model,
    field_name: str | None = None,
    sync: bool = False,
    *,
    triggered_by: str = "regenerate",
) -> AIJob | list[AIJob]:
    """Request a fresh value for one AI field (returns its job) or all (a list).

    Bypasses the result cache. ``sync=True`` runs the job in this process now
    and returns it finished; otherwise it is enqueued when the transaction commits.
    """
    fields = (
        [get_ai_field(type(instance), field_name)] if field_name else ai_fields_of(type(instance))
    )
    jobs = request_jobs(instance, fields, triggered_by=triggered_by, force=True)
    if sync:
        for job in jobs:
            run_job(job.pk)
            job.refresh_from_db()
    return jobs[0] if field_name else jobs


def latest_job(instance: models.Model, field_name: str) -> AIJob | None:
    """The most recent job for this row and field, or None."""
    get_ai_field(type(instance), field_name)
    return (
        AIJob.objects.filter(
            content_type=ContentType.objects.get_for_model(instance),
            object_id=str(instance.pk),
            field_name=field_name,
        )
        .order_by("-pk")
        .first()
    )


def run_ai_task(
    name: str,
    payload: Any = None,
    tenant: str | None = None,
    *,
    sync: bool = False,
    triggered_by: str = "api",
) -> AIJob:
    """Start the registered AI function ``name`` on ``payload`` (JSON-safe data).

    Returns its AIJob, enqueued when the transaction commits, or run in this
    process now with ``sync=True``. Raises LookupError for an unknown name.
    """
    get_function(name)
    job = AIJob.objects.create(
        function=name, payload=json_safe(payload), tenant=tenant or "", triggered_by=triggered_by
    )
    if sync:
        run_job(job.pk)
        job.refresh_from_db()
    else:
        transaction.on_commit(partial(enqueue, job.pk), robust=True)
    signals.job_requested.send(sender=AIJob, job=job)
    return job
