"""A value's history, read from the jobs that wrote it, and a revert to an earlier one.

Every value written to an AI field has a ``succeeded`` job: an answer (``ai``, an
accepted proposal included), a person's edit (``manual``, an edited accept
included) or a revert (``revert``). No other table: ``ai_cleanup`` keeps the newest
``HISTORY_KEEP`` of them per row and field (retention.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import models, transaction
from django.utils.translation import gettext_lazy as _

from .. import databases, row_keys
from ..fields import AIFieldMixin
from ..functions import Cancelled, Superseded
from ..generation import FieldGeneration
from ..intake.outbox import database_of, record_hand_edits
from ..intake.tracking import tracker_for
from ..models import FIELD_FUNCTION, HAND_EDIT, REVERT, AIJob, Status

AI, MANUAL = "ai", "manual"
# Columns a history entry never needs.
HEAVY_COLUMNS = ("prompt", "payload", "steps", "partial_output")


@dataclass(frozen=True)
class Entry:
    """One value the field held: newest first in ``history()``."""

    value: Any
    source: str  # "ai", "manual" or "revert"
    created_at: datetime  # when it was written
    model: str  # the LLM model of an answer; "" for a person's value
    job: AIJob


def history(instance: models.Model, field: AIFieldMixin, limit: int = 10) -> list[Entry]:
    """The values ``field`` of this row held, newest first (the first is the value it
    holds now, unless something wrote it without a job); at most ``limit``. One query."""
    jobs = value_jobs(instance, field).defer(*HEAVY_COLUMNS)[: max(limit, 0)]
    return [entry(job) for job in jobs]


def entry(job: AIJob) -> Entry:
    source = {HAND_EDIT: MANUAL, REVERT: REVERT}.get(job.triggered_by, AI)
    return Entry(
        value=job.output,
        source=source,
        created_at=job.finished_at or job.created_at,
        model=job.model if source == AI else "",
        job=job,
    )


def value_jobs(instance: models.Model, field: AIFieldMixin) -> models.QuerySet[AIJob]:
    using = database_of(instance)  # where the row's jobs are written
    content_type = ContentType.objects.db_manager(using).get_for_model(field.model_class)
    return (
        AIJob.objects.using(using)
        .filter(
            content_type=content_type,
            object_id=row_keys.key_of(instance),
            field_name=field.name,
            function=FIELD_FUNCTION,
            status=Status.SUCCEEDED,
        )
        .order_by("-pk")
    )


class RevertRefused(ValueError):
    """The job holds no value of this row's field that can be written back."""


NOT_THIS_VALUE = _("AI job #%(id)s wrote no value of this row's field %(field)s.")
MASKED = _(
    "AI job #%(id)s keeps the answer with its personal data masked (restore_pii): "
    "that value cannot be written back."
)
CHANGED_MEANWHILE = _("The row changed while the value was written back; try again.")


def revert(instance: models.Model, field: AIFieldMixin, job: AIJob) -> AIJob:
    """Write the value ``job`` wrote back to the row, through the guarded write, and
    record it as a hand edit (``triggered_by="revert"``): ``keep_manual_edits`` keeps
    it until an explicit regenerate. Returns the record; ``instance`` holds the value."""
    if not value_jobs(instance, field).filter(pk=job.pk).exists():
        raise RevertRefused(str(NOT_THIS_VALUE) % {"id": job.pk, "field": field.name})
    if field.ai.restore_pii and entry(job).source == AI:
        raise RevertRefused(str(MASKED) % {"id": job.pk})
    generation = FieldGeneration(
        ContentType.objects.get_for_model(field.model_class), row_keys.key_of(instance), field.name
    )
    using = database_of(instance)
    with databases.pinned(using), transaction.atomic(using=using):
        data = generation.prepare(None, "")
        try:
            generation.save_output(job.output, data)
        except (Superseded, Cancelled):
            raise RevertRefused(str(CHANGED_MEANWHILE)) from None
        setattr(data.instance, field.attname, job.output)
        (record,) = record_hand_edits(data.instance, [field], using=using, source=REVERT)
    setattr(instance, field.attname, job.output)
    tracker = tracker_for(type(instance))
    if tracker is not None:  # a later save() of ``instance`` is no edit of this value
        tracker.remember(instance, [field.attname])
    return record


__all__ = ["Entry", "RevertRefused"]
