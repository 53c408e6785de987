"""The Python API: ask for a fresh value, look at the latest job; review, staleness,
history and revert of the values (docs/values.md)."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import models, router, transaction

from . import row_keys
from .dispatch import context, handover, transitions
from .fields import AIFieldMixin, ai_fields_of, get_ai_field, with_m2m_triggers
from .functions import get_function, json_safe
from .intake.outbox import database_of, request_jobs, request_rows
from .jobs.estimates import Estimate, estimate_pairs
from .jobs.tasks import run_chunk, run_job
from .models import AIJob, Status
from .values import history as value_history
from .values import review, states
from .values.history import Entry


def regenerate(
    instance: models.Model | models.QuerySet[Any],
    field_name: str | None = None,
    sync: bool = False,
    *,
    triggered_by: str = "regenerate",
) -> AIJob | list[AIJob]:
    """Request a fresh value for one AI field (returns its job) or all (a list).

    Bypasses the result cache. ``sync=True`` runs the job in this process now
    and returns it finished; otherwise it is enqueued when the transaction commits.
    A queryset requests the field(s) for every row and returns all the jobs;
    they go to the queue in chunk jobs whose provider calls run concurrently
    (``sync=True`` runs them that way in this process).
    """
    if isinstance(instance, models.QuerySet):
        return regenerate_rows(instance, field_name, sync=sync, triggered_by=triggered_by)
    jobs = request_jobs(
        instance, fields_named(type(instance), field_name), triggered_by=triggered_by, force=True
    )
    if sync:
        for job in jobs:
            run_job(job.pk, context=context.capture(job._state.db))
            job.refresh_from_db()
    return jobs[0] if field_name else jobs


def regenerate_rows(
    rows: models.QuerySet[Any], field_name: str | None, *, sync: bool, triggered_by: str
) -> list[AIJob]:
    fields = fields_named(rows.model, field_name)
    pairs = [(row, field) for row in with_m2m_triggers(rows, fields) for field in fields]
    # Jobs go where the rows are written: the database named with using(), else the
    # router's write database (rows read from a replica are written to the primary).
    using = getattr(rows, "_db", None) or router.db_for_write(rows.model)
    return regenerate_many(pairs, sync=sync, triggered_by=triggered_by, using=using)


def regenerate_many(
    pairs: Iterable[tuple[models.Model, AIFieldMixin]],
    *,
    sync: bool = False,
    triggered_by: str = "regenerate",
    using: str | None = None,
) -> list[AIJob]:
    """Request a fresh value for each (row, AI field): one transaction, then the
    new jobs go to the queue in chunk jobs on commit, or run in this process
    (concurrently, as a chunk) with ``sync=True``."""
    by_field: dict[AIFieldMixin, list[models.Model]] = {}
    for row, field in pairs:
        by_field.setdefault(field, []).append(row)
    if not by_field:
        return []
    using = using or database_of(next(iter(by_field.values()))[0])
    with transaction.atomic(using=using):
        jobs = [
            job
            for field, rows in by_field.items()
            for job in request_rows(rows, field, triggered_by=triggered_by, using=using)
        ]
        if not sync:  # reused jobs still waiting on the queue keep their place
            new_ids = [job.pk for job in jobs if job.status == Status.PENDING]
            handing = partial(handover.to_chunks, new_ids, context.capture(using))
            transaction.on_commit(handing, using=using, robust=True)
    if sync:
        run_chunk([job.pk for job in jobs], context=context.capture(using))
        for job in jobs:
            job.refresh_from_db()
    return jobs


def estimate(
    instance: models.Model | models.QuerySet[Any], field_name: str | None = None
) -> Estimate:
    """What ``regenerate(instance, field_name)`` would cost, changing nothing: rows,
    jobs, the worst-case and the expected cost in USD, models without a price, and
    how many jobs each quota or budget would refuse (docs/quotas.md)."""
    rows = instance if isinstance(instance, models.QuerySet) else [instance]
    model = instance.model if isinstance(instance, models.QuerySet) else type(instance)
    fields = fields_named(model, field_name)
    return estimate_pairs((row, field) for row in rows for field in fields)


def fields_named(model: type[models.Model], field_name: str | None) -> list[AIFieldMixin]:
    return [get_ai_field(model, field_name)] if field_name else ai_fields_of(model)


def latest_job(instance: models.Model, field_name: str) -> AIJob | None:
    """The most recent job for this row and field, or None."""
    field = get_ai_field(type(instance), field_name)
    return (
        AIJob.objects.filter(
            content_type=ContentType.objects.get_for_model(field.model_class),
            object_id=row_keys.key_of(instance),
            field_name=field_name,
        )
        .order_by("-pk")
        .first()
    )


# -- values over time (docs/values.md) --------------------------------------------------


def accept(job: AIJob, user: Any = None, value: Any = None) -> AIJob:
    """Write a proposal waiting for review to its row (or ``value``, the person's
    edit, validated like an answer; None: the proposal) and end the job ``succeeded``. Raises
    ``ValidationError`` for an invalid value, ``review.NotInReview`` when the job
    waits for no review, ``review.ProposalOutdated`` when the row's inputs changed
    since the proposal was made (nothing is written)."""
    return review.accept(job, user, review.UNSET if value is None else value)


def reject(job: AIJob, user: Any = None) -> AIJob:
    """End a proposal waiting for review ``cancelled``, the row untouched."""
    return review.reject(job, user)


def stale(
    model_or_queryset: type[models.Model] | models.QuerySet[Any], field: str | AIFieldMixin
) -> models.QuerySet[Any]:
    """The rows whose value of ``field`` was written under another definition than
    the field's now (prompt, model...: docs/values.md); a queryset, one query."""
    rows = (
        model_or_queryset
        if isinstance(model_or_queryset, models.QuerySet)
        else model_or_queryset._default_manager.all()
    )
    return states.rows_in_state(rows, field_of(rows.model, field), states.STALE)


def is_stale(instance: models.Model, field: str | AIFieldMixin) -> bool:
    """Whether this row's value of ``field`` was written under another definition."""
    rows = type(instance)._base_manager.using(instance._state.db).filter(pk=instance.pk)
    return stale(rows, field).exists()


def history(instance: models.Model, field: str | AIFieldMixin, limit: int = 10) -> list[Entry]:
    """The values the row's ``field`` held, newest first, each with ``value``,
    ``source`` (``"ai"``, ``"manual"``, ``"revert"``), ``created_at``, ``model`` and
    ``job``; at most ``limit``."""
    return value_history.history(instance, field_of(type(instance), field), limit)


def revert(instance: models.Model, field: str | AIFieldMixin, job: AIJob) -> AIJob:
    """Write back the value ``job`` wrote, as a hand edit (kept until an explicit
    regenerate); returns the job recording it. Raises ``history.RevertRefused``."""
    return value_history.revert(instance, field_of(type(instance), field), job)


def field_of(model: type[models.Model], field: str | AIFieldMixin) -> AIFieldMixin:
    return field if isinstance(field, AIFieldMixin) else get_ai_field(model, field)


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
    transitions.opened([job])
    if sync:
        run_job(job.pk)
        job.refresh_from_db()
    else:
        transaction.on_commit(partial(handover.to_drain, [job.pk]), robust=True)
    return job


__all__ = [
    "accept",
    "estimate",
    "history",
    "is_stale",
    "latest_job",
    "regenerate",
    "regenerate_many",
    "regenerate_rows",
    "reject",
    "revert",
    "run_ai_task",
    "stale",
]
