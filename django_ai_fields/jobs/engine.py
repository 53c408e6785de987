"""The RQ job function: one AIJob from INIT to DONE.

Every state change is a conditional UPDATE guarded by the run's token, so a
job recovered by the sweep while a slow worker still holds it is finished by
exactly one of them.
"""

from __future__ import annotations

import contextlib
import logging
import random
import uuid
from collections.abc import Sequence
from typing import Any

from django.db import DataError, IntegrityError, close_old_connections, connection, transaction
from django.db.models import F
from django.utils import timezone
from rq.timeouts import JobTimeoutException

from .. import observability, signals
from ..calling import answer as repair
from ..calling import result_cache, routing
from ..calling.pipeline import Pipeline, Prepared, call_cost, drive, job_timeout_error, record_usage
from ..conf import get_setting
from ..declare.generation import FIELD_FUNCTION, FieldGeneration
from ..declare.outputs import clipped, without_nul
from ..functions import AIFunction, Cancelled, Superseded, get_function, json_safe
from ..models import OPEN_STATUSES, AIJob, ErrorCode, Phase, Status, TenantPolicy
from ..money.quotas import QuotaRefused
from ..privacy import redaction
from ..providers import CompletionRequest, CompletionResponse, ProviderError, resolve_credentials
from ..providers.tools import normalize as normalize_tools
from ..tenants import concurrency
from ..tenants.policies import policy_for
from . import recovery
from .steps import with_note, with_step, with_tool_calls

logger = logging.getLogger("django_ai_fields")

PROGRESS = {Phase.INIT: 5, Phase.PREP: 15, Phase.AI_CALL: 30, Phase.PARSE: 70, Phase.SAVE: 85}


class LeaseLost(Exception):
    """Another run took this job over (sweep recovery) or it was cancelled."""


def run_job(job_id: int) -> str:
    """RQ entry point. Returns the job's final status (or "skipped")."""
    if not connection.in_atomic_block:
        close_old_connections()  # a long-lived worker may hold a dead connection
    try:
        return drive(job_pipeline(job_id))
    finally:
        from .sweep import schedule_sweep

        schedule_sweep()


def job_pipeline(job_id: int) -> Pipeline[str]:
    """One job from lease to final status, waiting (yielding) for its provider calls."""
    job = lease(job_id)
    if job is None:
        return "skipped"
    return (yield from leased_job_pipeline(job))


def leased_job_pipeline(job: AIJob) -> Pipeline[str]:
    """A leased job to its final status."""
    try:
        return (yield from process(job))
    except LeaseLost:
        return "lease-lost"
    except JobTimeoutException:
        # RQ's job timeout fired outside the provider call: retry like a timed-out call.
        return retry_after_crash(job, job_timeout_error())
    except recovery.CONNECTION_ERRORS as exc:
        # The database went away mid-job: reconnect and retry the job (if the
        # database is still down this raises; RQ fails the run and the sweep recovers it).
        return retry_after_crash(job, recovery.database_lost(job, exc))
    except Exception as exc:
        logger.exception("AI job %s crashed", job.pk)
        fail(job, ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}")
        return Status.FAILED


def retry_after_crash(job: AIJob, error: ProviderError) -> str:
    try:
        return handle_provider_error(job, error)
    except LeaseLost:
        return "lease-lost"


def lease(job_id: int, *, batch: bool = False) -> AIJob | None:
    """Take an open job for this run; None if it is not open any more. A job
    waiting in a provider batch is taken only by its batch's poll (``batch=True``)."""
    taken = lease_many([job_id], batch=batch)
    return taken[0] if taken else None


def lease_many(job_ids: Sequence[int], *, batch: bool = False) -> list[AIJob]:
    """Take the jobs still open, in one UPDATE (a chunk starts several at once).
    They share the run's token: every later write names the job's pk as well."""
    token = uuid.uuid4().hex
    open_jobs = AIJob.objects.filter(pk__in=job_ids, status__in=OPEN_STATUSES)
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
        **recovery.current_rq_job(),
    )
    if not taken:
        return []
    jobs = list(
        AIJob.objects.select_related("content_type").filter(pk__in=job_ids, run_token=token)
    )
    for job in jobs:
        observability.job_status_changed(job)
    return jobs


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


def process(job: AIJob) -> Pipeline[str]:
    """Apply the tenant's policy, then generate within its concurrency cap."""
    policy = policy_for(job.tenant)
    if policy is not None and not policy.ai_enabled:
        reason = policy.disabled_reason or f"AI is switched off for tenant {job.tenant}."
        finish(job, Status.CANCELLED, phase=Phase.INIT, error=reason)
        return Status.CANCELLED
    cap = policy.max_concurrent_jobs if policy is not None else None
    if cap and not concurrency.acquire(job.tenant, job.pk, cap):
        return postpone(job, float(get_setting("CONCURRENCY_RETRY_DELAY")))
    try:
        return (yield from generate(job, policy))
    finally:
        if cap:
            concurrency.release(job.tenant, job.pk)


def postpone(job: AIJob, delay: float) -> str:
    """Put the job back to wait; the attempt does not count."""
    update_job(
        job,
        status=Status.QUEUED,
        phase=Phase.INIT,
        progress=0,
        attempts=F("attempts") - 1,
        run_token="",
        rq_job_id="",  # its delayed RQ job names it next; no drain takes it now
    )
    from ..intake.outbox import enqueue

    enqueue(job.pk, delay=delay * random.uniform(0.5, 1.5))
    return Status.QUEUED


def generate(job: AIJob, policy: TenantPolicy | None) -> Pipeline[str]:
    job.steps = with_step(job, {"phase": Phase.PREP})  # written with the next update
    try:
        prepared = prepare(job, policy)
    except PREP_REFUSALS as exc:
        return end_at_prep(job, exc)
    note_redaction(job, prepared)
    function, request = prepared.function, prepared.request
    ttl = function.result_cache_ttl()
    key = result_cache.cache_key(job.tenant, prepared.provider, request) if ttl > 0 else ""
    update_job(
        job,
        phase=Phase.AI_CALL,
        progress=PROGRESS[Phase.AI_CALL],
        input_hash=function.input_hash(prepared.data),
        prompt=request.prompt if get_setting("STORE_PROMPTS") else "",
        provider=prepared.provider,
        model=request.model,
        cache_key=key,
    )
    if key and not job.force:
        cached = result_cache.lookup(key, ttl)
        if cached is not result_cache.MISS:
            record_usage(job, prepared, CompletionResponse(text=""), cache_hit=True)
            return write_back(job, prepared, cached, None)
    save_job = lambda **columns: update_job(job, **columns)  # noqa: E731
    try:
        # Routes (circuits, rate limits, fallbacks), moderation, one repair call.
        prepared, response, parsed = yield from repair.answer(job, prepared, save_job)
    except routing.Deferred as deferral:
        return routing.defer(job, deferral, save_job)
    except QuotaRefused as refusal:
        return end_at_prep(job, refusal)
    except ProviderError as error:
        return handle_provider_error(job, error)
    except repair.Unusable as exc:
        return end_unusable(job, str(exc), exc.response)
    return write_back(job, prepared, parsed, response)


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


def function_for(job: AIJob) -> AIFunction:
    if job.function == FIELD_FUNCTION:
        if job.content_type is None:
            raise Cancelled("The job names no target row.")
        return FieldGeneration(job.content_type, job.object_id, job.field_name)
    return get_function(job.function)()


# prepare()'s default: look the tenant's policy up.
LOOK_UP: Any = object()


def prepare(job: AIJob, policy: TenantPolicy | None = LOOK_UP) -> Prepared:
    """Load the data and build the request, its prompt's PII masked (redaction.py).
    Raises Cancelled, or ValueError to refuse."""
    try:
        function = function_for(job)
    except LookupError as exc:
        raise ValueError(str(exc)) from exc
    data = function.prepare(job.payload, job.tenant)
    return request_for(function, data, job.tenant, policy)


def request_for(
    function: AIFunction, data: Any, tenant: str, policy: TenantPolicy | None = LOOK_UP
) -> Prepared:
    """The request ``function`` sends for ``data`` (validated) of ``tenant``, its
    prompt's PII masked as the field and the tenant's policy ask."""
    function.validate(data)
    provider = function.provider_name()
    config = resolve_credentials(provider, tenant or None)
    if policy is LOOK_UP:
        policy = policy_for(tenant)
    prompt, masking = redaction.redact(
        function.build_prompt(data), redaction.types_for(function, policy)
    )
    request = CompletionRequest(
        system=function.system_prompt(data),
        prompt=prompt,
        model=function.model_name(config),
        max_tokens=function.token_limit(),
        temperature=function.temperature,
        json_schema=function.json_schema,
        json_output=function.json_output or function.json_schema is not None,
        choices=function.choices(),
        options=dict(function.provider_options),
        tools=normalize_tools(function.tools),
        attachments=function.attachments(data),
        api=function.api,
    )
    return Prepared(function, data, request, provider, config, masking)


def note_redaction(job: AIJob, prepared: Prepared) -> None:
    """Add a step with the masked counts per type (written with the next update)."""
    if prepared.masking is not None:
        counts = dict(prepared.masking.counts)
        job.steps = with_note(job, Phase.PREP, redaction.describe(counts), pii=counts)


def handle_provider_error(job: AIJob, error: ProviderError) -> str:
    if error.retryable and job.attempts < get_setting("MAX_ATTEMPTS"):
        delay = retry_delay(job.attempts, error.retry_after)
        update_job(
            job,
            status=Status.QUEUED,
            phase=Phase.INIT,
            progress=0,
            error_code=error.code,
            error=error.message,
            run_token="",
            rq_job_id="",  # its delayed RQ job names it next; no drain takes it now
        )
        from ..intake.outbox import enqueue

        enqueue(job.pk, delay=delay)
        return Status.QUEUED
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


def write_back(
    job: AIJob, prepared: Prepared, parsed: Any, response: CompletionResponse | None
) -> str:
    """Save the output and finish the job in one transaction."""
    token = job.run_token
    output = json_safe(parsed)  # placeholders kept: the job stores no masked value
    parsed = prepared.restored(parsed)
    try:
        with transaction.atomic():
            prepared.function.save_output(parsed, prepared.data)
            finish(job, Status.SUCCEEDED, output=output, response=response, send=False)
    except Superseded as exc:
        job.run_token = token  # the rolled-back finish() had cleared it in memory
        finish(job, Status.SUPERSEDED, phase=Phase.SAVE, error=str(exc), response=response)
        return Status.SUPERSEDED
    except Cancelled as exc:  # the row was deleted while the call ran
        job.run_token = token
        finish(job, Status.CANCELLED, phase=Phase.SAVE, error=str(exc), response=response)
        return Status.CANCELLED
    except (IntegrityError, DataError) as exc:
        if prepared.masking is None:
            raise
        # The database's message may quote a restored value: keep it from the job and logs.
        job.run_token = token
        raise redaction.RestoredWriteFailed(type(exc).__name__) from None
    transaction.on_commit(lambda: _announce_success(job, prepared.function, parsed))
    return Status.SUCCEEDED


def _announce_success(job: AIJob, function: AIFunction, parsed: Any) -> None:
    function.after_commit(job, parsed)
    signals.job_completed.send(sender=AIJob, job=job)


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
    with contextlib.suppress(LeaseLost):
        finish(job, Status.FAILED, phase=job.phase, error_code=code, error=message)


__all__ = ["run_job"]
