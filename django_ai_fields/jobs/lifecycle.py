"""The job lifecycle: every state change of an AIJob after it was requested.

Leasing (queued -> running), the guarded column writes of a run, putting a job
back on the queue (a retry, or a wait that does not use an attempt), finishing it
(succeeded, failed, cancelled, superseded) and recovering a job whose run was lost.
Every change made by a run is a conditional UPDATE guarded by the run's token, so a
job recovered by the sweep while a slow worker still holds it is finished by
exactly one of them. The intake layer (intake/outbox.py) writes the rows and marks
them queued; the retry and cancel actions (actions.py) act on jobs no run holds.
"""

from __future__ import annotations

import contextlib
import random
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from .. import observability, signals
from ..calling.pipeline import Prepared, call_cost
from ..calling.routing import Deferred
from ..conf import get_setting
from ..declare.outputs import clipped, without_nul
from ..functions import Cancelled
from ..intake.outbox import enqueue
from ..models import OPEN_STATUSES, AIJob, ErrorCode, Phase, Status, TenantPolicy
from ..money import quotas
from ..money.quotas import QuotaRefused
from ..providers import CompletionResponse, ProviderError
from .steps import with_step, with_tool_calls

PROGRESS = {Phase.INIT: 5, Phase.PREP: 15, Phase.AI_CALL: 30, Phase.PARSE: 70, Phase.SAVE: 85}


class LeaseLost(Exception):
    """Another run took this job over (sweep recovery) or it was cancelled."""


# -- leasing -------------------------------------------------------------------


def lease(job_id: int, *, batch: bool = False) -> AIJob | None:
    """Take an open job for this run; None if it is not open any more. A job
    waiting in a provider batch is taken only by its batch's poll (``batch=True``)."""
    taken = lease_many([job_id], batch=batch)
    return taken[0] if taken else None


def lease_many(
    job_ids: Sequence[int], *, batch: bool = False, among: QuerySet[AIJob] | None = None
) -> list[AIJob]:
    """Take the jobs still open, in one UPDATE (a chunk starts several at once), and
    only those still in ``among`` if given (a drain's: still waiting for a drain).
    They share the run's token: every later write names the job's pk as well."""
    token = uuid.uuid4().hex
    candidates = AIJob.objects.all() if among is None else among
    open_jobs = candidates.filter(pk__in=job_ids, status__in=OPEN_STATUSES)
    open_jobs = (
        open_jobs.filter(phase=Phase.BATCH) if batch else open_jobs.exclude(phase=Phase.BATCH)
    )
    taken = open_jobs.update(
        status=Status.RUNNING,
        run_token=token,
        attempts=F("attempts") + 1,
        started_at=timezone.now(),
        # INIT is the lease itself: the job goes straight to PREP, in this query.
        phase=Phase.PREP,
        progress=PROGRESS[Phase.PREP],
        partial_output="",
        **current_rq_job(),
    )
    if not taken:
        return []
    jobs = list(
        AIJob.objects.select_related("content_type").filter(pk__in=job_ids, run_token=token)
    )
    for job in jobs:
        observability.job_status_changed(job)
    return jobs


def current_rq_job() -> dict[str, str]:
    """``{"rq_job_id": ...}`` of the RQ job running this code (none outside RQ), so
    the row names the run that leased it, not an older RQ job of the same AIJob."""
    from rq import get_current_job

    rq_job = get_current_job()
    return {"rq_job_id": rq_job.id} if rq_job is not None else {}


def update_job(job: AIJob, **values: Any) -> None:
    """Write job columns only while this run still holds the job. A phase or
    status change also adds a step to the job's step log (same query)."""
    if ("phase" in values or "status" in values) and "steps" not in values:
        values["steps"] = with_step(job, values)
    # An empty token is not a lease: it would match every finished job.
    if not job.run_token or not AIJob.objects.filter(pk=job.pk, run_token=job.run_token).update(
        **values, updated_at=timezone.now()
    ):
        raise LeaseLost
    for name, value in values.items():
        if not hasattr(value, "resolve_expression"):
            setattr(job, name, value)
    if "status" in values:
        observability.job_status_changed(job)


def refused_by_policy(job: AIJob, policy: TenantPolicy | None) -> str | None:
    """Cancel the job when its tenant's policy (``policy_for(job.tenant)``) switched
    AI off; returns the job's status then, else None."""
    if policy is not None and not policy.ai_enabled:
        reason = policy.disabled_reason or f"AI is switched off for tenant {job.tenant}."
        finish(job, Status.CANCELLED, phase=Phase.INIT, error=reason)
        return Status.CANCELLED
    return None


def record_request(job: AIJob, prepared: Prepared, cache_key: str, **values: Any) -> None:
    """Write the prepared request's columns (hash, prompt, provider, model, cache key)."""
    function, request = prepared.function, prepared.request
    update_job(
        job,
        **values,
        input_hash=function.input_hash(prepared.data),
        prompt=request.prompt if get_setting("STORE_PROMPTS") else "",
        provider=prepared.provider,
        model=request.model,
        cache_key=cache_key,
    )


# -- back to the queue -----------------------------------------------------------


def requeue(job: AIJob, delay: float, *, use_attempt: bool, **values: Any) -> str:
    """Put the job back on the queue in ``delay`` seconds. ``use_attempt=False``: a
    wait (concurrency cap, open circuit, no batch API), not a retry."""
    if not use_attempt:
        values["attempts"] = F("attempts") - 1
    # rq_job_id: the delayed RQ job names it next; no drain (drains.py) takes it now.
    values.update(rq_job_id="", run_token="")
    update_job(job, status=Status.QUEUED, phase=Phase.INIT, progress=0, **values)
    enqueue(job.pk, delay=delay)
    return Status.QUEUED


def postpone(job: AIJob, delay: float) -> str:
    """Put the job back to wait about ``delay`` seconds; the attempt does not count."""
    return requeue(job, delay * random.uniform(0.5, 1.5), use_attempt=False)


def defer(job: AIJob, deferral: Deferred) -> str:
    """Back to the queue for ``deferral.delay`` seconds (the routes' circuits are
    open); the attempt does not count, the reason is kept on the job."""
    return requeue(
        job, deferral.delay, use_attempt=False, error_code=deferral.code, error=deferral.message
    )


def handle_provider_error(job: AIJob, error: ProviderError) -> str:
    """Retry a retryable error while attempts are left (with backoff), else fail."""
    if error.retryable and job.attempts < get_setting("MAX_ATTEMPTS"):
        delay = retry_delay(job.attempts, error.retry_after)
        return requeue(job, delay, use_attempt=True, error_code=error.code, error=error.message)
    finish(job, Status.FAILED, phase=Phase.AI_CALL, error_code=error.code, error=error.message)
    return Status.FAILED


def retry_delay(attempt: int, retry_after: float | None) -> float:
    """Full-jitter exponential backoff; a provider's Retry-After is a floor (capped)."""
    base = float(get_setting("RETRY_BACKOFF"))
    cap = float(get_setting("RETRY_BACKOFF_MAX"))
    delay = random.uniform(0, min(cap, base * 2**attempt))
    if retry_after is not None:
        delay = max(delay, min(retry_after, float(get_setting("RETRY_AFTER_MAX"))))
    return delay


# -- the end -------------------------------------------------------------------


# What ends a job before its call: the row is gone, the data refused, no quota.
PREP_REFUSALS = (Cancelled, ValueError, QuotaRefused)


def end_at_prep(job: AIJob, exc: Exception, response: CompletionResponse | None = None) -> str:
    """Finish a job that PREP refused (one of PREP_REFUSALS); returns its status.
    ``response``: an answer already billed for it (a provider batch's), charged to the job."""
    if isinstance(exc, Cancelled):
        finish(job, Status.CANCELLED, phase=Phase.PREP, error=str(exc), response=response)
        return Status.CANCELLED
    if isinstance(exc, QuotaRefused):
        code, message = exc.code, exc.message
    else:
        code, message = ErrorCode.BAD_REQUEST, str(exc)
    finish(job, Status.FAILED, phase=Phase.PREP, error_code=code, error=message, response=response)
    return Status.FAILED


def end_unusable(job: AIJob, message: str, response: CompletionResponse) -> str:
    """Fail a job whose answer stayed invalid, keeping the answer on the job."""
    finish(
        job,
        Status.FAILED,
        phase=Phase.PARSE,
        error_code=ErrorCode.INVALID_OUTPUT,
        error=message,
        output=without_nul(clipped(response.text)),  # no NUL (jsonb); at most MAX_OUTPUT_CHARS
        response=response,
    )
    return Status.FAILED


def finish(
    job: AIJob,
    status: str,
    *,
    phase: str = Phase.DONE,
    error_code: str = "",
    error: str = "",
    output: Any = None,
    response: CompletionResponse | None = None,
    send: bool = True,
) -> None:
    """Move the job to a final status (guarded by the run token)."""
    values: dict[str, Any] = {
        "status": status,
        "phase": phase,
        "error_code": error_code,
        "error": error,
        "finished_at": timezone.now(),
        "run_token": "",
        "partial_output": "",
    }
    if status == Status.SUCCEEDED:
        values["progress"] = 100
    if output is not None:
        values["output"] = output
    if response is not None:
        cost = call_cost(job.model, response, job.provider)
        values["input_tokens"] = F("input_tokens") + response.input_tokens
        values["output_tokens"] = F("output_tokens") + response.output_tokens
        values["cost_usd"] = F("cost_usd") + cost
        values["steps"] = with_step(
            job,
            values,
            input_tokens=response.input_tokens,
            output_tokens=response.output_tokens,
            cost_usd=str(cost),
        )
        values["steps"] = with_tool_calls(job, values["steps"], response)
    update_job(job, **values)
    if send and status == Status.FAILED:
        signals.job_failed.send(sender=AIJob, job=job, error_code=error_code, error=error)


def fail(job: AIJob, code: str, message: str) -> None:
    """Fail the job where it is (a crash), unless another run holds it now."""
    with contextlib.suppress(LeaseLost):
        finish(job, Status.FAILED, phase=job.phase, error_code=code, error=message)


def recover_lost(
    job: AIJob,
    guarded: QuerySet[AIJob],
    *,
    exhausted: bool,
    error_code: str,
    error: str,
    now: datetime | None = None,
) -> str | None:
    """A run was lost (its worker died): fail the job when no attempts are left,
    else put it back to pending, and release its quota reservations. ``guarded``
    selects the job only in the state it was read in; returns the new status, or
    None when something else changed the job meanwhile."""
    values: dict[str, Any] = {"run_token": "", "reservations": []}
    if exhausted:
        values.update(
            status=Status.FAILED,
            error_code=error_code,
            error=error,
            finished_at=now or timezone.now(),
        )
    else:
        values["status"] = Status.PENDING
    with transaction.atomic():
        if not guarded.update(**values):
            return None
        if job.reservations:
            quotas.release(job.reservations)
    return str(values["status"])
