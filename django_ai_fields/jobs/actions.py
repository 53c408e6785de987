"""Retry and cancel: the job actions shared by the admin and the JSON API.

Both are conditional UPDATEs, so a worker or another admin acting on the same
job at the same moment cannot make a job run twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial

from django.db import IntegrityError, transaction
from django.utils.translation import gettext_lazy as _

from ..dispatch import handover, transitions
from ..models import OPEN_STATUSES, AIJob, Phase
from ..tenants import tenant_now
from . import retry_limits

RETRYABLE_STATUSES = transitions.RESTARTABLE_STATUSES
CANCELLABLE_STATUSES = OPEN_STATUSES

# Reasons an action skips a job (also the JSON API's error codes).
INVALID_STATE = "invalid_state"
OPEN_JOB_EXISTS = "open_job_exists"
RETRY_LIMITED = "retry_limited"  # RETRY_COOLDOWN / MAX_RETRIES_PER_HOUR (retry_limits.py)
ROW_MOVED = "row_moved"  # the job's row belongs to another tenant now
CANCELLED_BY_USER = _("Cancelled by a user.")


@dataclass
class ActionResult:
    done: list[int] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)  # job id -> reason


def retry(job: AIJob, tenant: str | None = None) -> str:
    """Start a failed or cancelled job afresh; "" on success, else the reason.

    The job goes back to pending with its attempts reset (so it gets MAX_ATTEMPTS
    again) and is enqueued on commit, as the tenant its row belongs to now. A user
    confined to ``tenant`` (None: an operator) may not retry a job whose row went to
    another tenant (``ROW_MOVED``). A row's field has at most one open job: if a
    newer one is open already, the retry is skipped rather than duplicated. Manual
    retries of one job are bounded (``RETRY_LIMITED``, retry_limits.py).
    """
    if job.status not in RETRYABLE_STATUSES:
        return INVALID_STATE
    owner = tenant_now(job)
    if owner is not None and tenant is not None and owner != tenant:
        return ROW_MOVED
    if retry_limits.take(job.pk) > 0:
        return RETRY_LIMITED
    try:
        with transaction.atomic():
            restarted = transitions.restart(job, tenant=owner)
    except IntegrityError:  # the one-open-job-per-field constraint
        return OPEN_JOB_EXISTS
    if not restarted:
        return INVALID_STATE
    transaction.on_commit(partial(handover.to_drain, [job.pk]), robust=True)
    return ""


def cancel(job: AIJob) -> str:
    """Cancel a pending or queued job; "" on success, else the reason.

    Its RQ job, if any, stays on the queue: the worker finds the job no longer
    open and skips it. A running job cannot be cancelled.
    """
    if job.status not in CANCELLABLE_STATUSES:
        return INVALID_STATE
    if not transitions.cancel(AIJob.objects.filter(pk=job.pk), str(CANCELLED_BY_USER)):
        return INVALID_STATE
    if job.phase == Phase.BATCH:  # waiting in a provider batch: free its quota now
        from .batches import release_cancelled

        release_cancelled(job.pk)
    return ""


def apply(action: str, jobs: Iterable[AIJob], tenant: str | None = None) -> ActionResult:
    """Run ``retry`` or ``cancel`` on each job, for a user confined to ``tenant``
    (None: an operator), and collect the outcome."""
    result = ActionResult()
    for job in jobs:
        reason = retry(job, tenant) if action == "retry" else cancel(job)
        if reason:
            result.skipped[job.pk] = reason
        else:
            result.done.append(job.pk)
    return result
