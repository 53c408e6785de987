"""What a run does with its job at each turn: the policy above the transitions.

Leasing, the guarded writes and every status change are dispatch.transitions'
(the one writer of ``AIJob.status``); getting a job back onto the queue is
dispatch.handover's. Here: whether an error is retried (and after how long) or
fails the job, what ends a job at PREP, what a finished job is charged.
"""

from __future__ import annotations

import contextlib
import random
from typing import Any

from django.db import IntegrityError
from django.utils.translation import gettext_lazy as _

from .. import databases
from ..calling.pipeline import Prepared
from ..calling.routing import Deferred
from ..conf import get_setting
from ..declare.outputs import clipped, without_nul
from ..dispatch import backend, handover, transitions
from ..dispatch.transitions import LeaseLost
from ..functions import Cancelled, Superseded
from ..models import AIJob, ErrorCode, Phase, Status, TenantPolicy
from ..money.quotas import QuotaRefused
from ..providers import CompletionResponse, ProviderError
from ..providers.key_redaction import redact_keys

# -- leasing -------------------------------------------------------------------


def lease(job_id: int, *, batch: bool = False) -> AIJob | None:
    """Take an open job for this run; None if it is not open any more. A job
    waiting in a provider batch is taken only by its batch's poll (``batch=True``)."""
    taken = transitions.lease([job_id], task_id=backend.current_task_id(), batch=batch)
    return taken[0] if taken else None


def update_job(job: AIJob, **columns: Any) -> None:
    """Write job columns (never its status) while this run still holds the job."""
    transitions.write(job, **columns)


def refused_by_policy(job: AIJob, policy: TenantPolicy | None) -> str | None:
    """Cancel the job when its tenant's policy (``policy_for(job.tenant)``) switched
    AI off; returns the job's status then, else None."""
    if policy is not None and not policy.ai_enabled:
        reason = policy.disabled_reason or f"AI is switched off for tenant {job.tenant}."
        transitions.finish(job, Status.CANCELLED, phase=Phase.INIT, error=reason)
        return Status.CANCELLED
    return None


def record_request(job: AIJob, prepared: Prepared, cache_key: str, **values: Any) -> None:
    """Write the prepared request's columns (hash, prompt, provider, model, cache key)."""
    update_job(job, **values, **request_columns(prepared, cache_key))


def record_request_later(job: AIJob, prepared: Prepared, cache_key: str) -> None:
    """Move the job to AI_CALL with the prepared request's columns, written with the
    job's next write: the transaction that logs its call before the request leaves
    (calling.pipeline.log_before_sending), which checks the lease, or whatever ends
    the job first (a cached answer, a refusal)."""
    transitions.write_later(
        job,
        phase=Phase.AI_CALL,
        progress=transitions.PROGRESS[Phase.AI_CALL],
        **request_columns(prepared, cache_key),
    )


def request_columns(prepared: Prepared, cache_key: str) -> dict[str, Any]:
    """The prepared request's columns: hash, prompt, provider, model, cache key."""
    function, request = prepared.function, prepared.request
    return {
        "input_hash": function.input_hash(prepared.data),
        "prompt": request.prompt if get_setting("STORE_PROMPTS") else "",
        "provider": prepared.provider,
        "model": request.model,
        "cache_key": cache_key,
    }


# -- back to the queue -----------------------------------------------------------


def requeue(job: AIJob, delay: float, *, use_attempt: bool, **values: Any) -> str:
    """Put the job back on the queue in ``delay`` seconds. ``use_attempt=False``: a
    wait (concurrency cap, open circuit, no batch API), not a retry. A save that
    opened a newer job for the row and field while this one ran makes this one
    ``superseded`` instead (one open job per row and field: the newer one calls)."""
    try:
        with databases.atomic(AIJob):  # a savepoint: the constraint's refusal is ours
            transitions.requeue(job, use_attempt=use_attempt, **values)
    except IntegrityError:
        finish(job, Status.SUPERSEDED, phase=job.phase, error=str(NEWER_JOB_OPEN))
        return Status.SUPERSEDED
    handover.now_or_later(job.pk, delay)
    return Status.QUEUED


NEWER_JOB_OPEN = _(
    "A newer job for this row and field was opened while this one ran: it does the work."
)


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
    transitions.finish(
        job, Status.FAILED, phase=Phase.AI_CALL, error_code=error.code, error=error.message
    )
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


# What ends a job before its call: the row is gone or moved to another tenant, the
# data refused, no quota.
PREP_REFUSALS = (Cancelled, Superseded, ValueError, QuotaRefused)


def end_at_prep(job: AIJob, exc: Exception) -> str:
    """Finish a job that PREP refused (one of PREP_REFUSALS); returns its status."""
    if isinstance(exc, Cancelled):
        finish(job, Status.CANCELLED, phase=Phase.PREP, error=str(exc))
        return Status.CANCELLED
    if isinstance(exc, Superseded):
        finish(job, Status.SUPERSEDED, phase=Phase.PREP, error=str(exc))
        return Status.SUPERSEDED
    if isinstance(exc, QuotaRefused):
        code, message = exc.code, exc.message
    else:
        code, message = ErrorCode.BAD_REQUEST, str(exc)
    finish(job, Status.FAILED, phase=Phase.PREP, error_code=code, error=message)
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
) -> None:
    """Move the job to a final status (guarded by the run token). Its calls were
    charged to it as they were booked (calling.pipeline.book)."""
    columns: dict[str, Any] = {} if output is None else {"output": output}
    transitions.finish(job, status, phase=phase, error_code=error_code, error=error, **columns)


def fail(job: AIJob, code: str, message: str) -> None:
    """Fail the job where it is (a crash), unless another run holds it now. The
    message may quote anything (an exception's text): keys are redacted from it."""
    with contextlib.suppress(LeaseLost):
        finish(job, Status.FAILED, phase=job.phase, error_code=code, error=redact_keys(message))
