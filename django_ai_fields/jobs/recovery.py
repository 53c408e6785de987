"""Recovering jobs whose run ended without finishing them.

- RQ marked the run failed or stopped (a work horse killed by the OOM killer or a
  signal, an exception that escaped ``run_job``, the database down when the job
  was leased) while our AIJob still says ``running`` or ``queued``: the sweep puts
  it back at once instead of waiting out JOB_TIMEOUT, so RQ's failed registry and
  the AIJob never disagree for longer than one sweep.
- The database connection dropped mid-job (PostgreSQL restarted, a proxy cut it):
  the run reconnects and retries the job with backoff, as an attempt.
"""

from __future__ import annotations

import logging

from django.db import connections
from django.db.models import QuerySet
from django.db.utils import InterfaceError, OperationalError

from .. import databases
from ..conf import get_setting
from ..dispatch import backend
from ..dispatch.transitions import recover_lost
from ..models import FIELD_FUNCTION, AIJob, ErrorCode, Status
from ..money import quotas
from ..providers import ProviderError

logger = logging.getLogger("django_ai_fields")

# How many of RQ's most recent failures each sweep looks at.
RECENT_FAILURES = 1000

CONNECTION_ERRORS = (OperationalError, InterfaceError)


class TransientError(ProviderError):
    """Not the provider's fault, but worth another attempt (the database went away)."""

    def __init__(self, message: str):
        super().__init__(ErrorCode.INTERNAL, message)

    @property
    def retryable(self) -> bool:
        return True


def database_lost(job: AIJob, exc: Exception) -> TransientError:
    """Drop the broken connection (the next query opens a new one), give back a
    quota reservation left on the job (a call's own never is: a call sent stays
    counted, calling.pipeline.log_before_sending), and describe the error.
    Raises when that cannot be done (inside a transaction, or the database is
    still down: then RQ fails the run and the sweep recovers the job)."""
    connection = connections[databases.for_decisions(AIJob)]
    if connection.in_atomic_block:
        raise exc
    logger.warning("AI job %s: database connection lost (%s): reconnecting", job.pk, exc)
    connection.close()
    with databases.atomic(AIJob):
        row = AIJob.objects.select_for_update().filter(pk=job.pk, run_token=job.run_token)
        reservations = row.values_list("reservations", flat=True).first()
        if reservations:
            quotas.release(reservations)
            row.update(reservations=[])
    return TransientError(f"Database connection lost: {type(exc).__name__}: {exc}")


# The columns recovery reads of a lost job.
LOST_JOB_COLUMNS = (
    "pk",
    "status",
    "run_token",
    "attempts",
    "reservations",
    "rq_job_id",
    "function",
    "content_type_id",
    "object_id",
    "field_name",
    "schema",
)


def newer_jobs(job: AIJob) -> QuerySet[AIJob]:
    """Jobs for the same row and field as ``job``, opened after it, in any status
    (none for a job of another AI function: no row, no field)."""
    if job.function != FIELD_FUNCTION or not job.object_id:
        return AIJob.objects.none()
    return AIJob.objects.filter(
        content_type_id=job.content_type_id,
        object_id=job.object_id,
        field_name=job.field_name,
        function=FIELD_FUNCTION,
        schema=job.schema,
        pk__gt=job.pk,
    )


def failed_runs() -> list[str]:
    """The ids of the runs RQ most recently marked failed ([] when Redis is down)."""
    try:
        return backend.recently_failed(RECENT_FAILURES)
    except Exception as exc:
        logger.warning("Sweep could not read RQ's failed registry: %s", exc)
        return []


def recover_failed_runs(rq_ids: list[str] | None = None) -> tuple[list[int], int]:
    """AIJobs whose current RQ job is in RQ's failed registry (``rq_ids``, read from
    it by default): back to pending (returned, to be enqueued) or failed when no
    attempts are left (counted), or superseded when a newer job for the row and
    field exists (not counted)."""
    if rq_ids is None:
        rq_ids = failed_runs()
    if not rq_ids:
        return [], 0
    stranded = AIJob.objects.filter(
        rq_job_id__in=rq_ids, status__in=(Status.RUNNING, Status.QUEUED)
    ).only(*LOST_JOB_COLUMNS)
    requeue: list[int] = []
    failed_count = 0
    for job in stranded:
        outcome = _recover(job)
        if outcome == Status.PENDING:
            requeue.append(job.pk)
        elif outcome == Status.FAILED:
            failed_count += 1
    return requeue, failed_count


def _recover(job: AIJob) -> str | None:
    guarded = AIJob.objects.filter(
        pk=job.pk, status=job.status, run_token=job.run_token, rq_job_id=job.rq_job_id
    )
    outcome = recover_lost(
        job,
        guarded,
        exhausted=job.status == Status.RUNNING and job.attempts >= get_setting("MAX_ATTEMPTS"),
        error_code=ErrorCode.INTERNAL,
        error="The worker running this job died (RQ marked it failed); no attempts are left.",
        newer=newer_jobs(job),
    )
    if outcome is not None:
        logger.warning("AI job %s: RQ job %s failed; now %s", job.pk, job.rq_job_id, outcome)
    return outcome
