"""The pipeline of one job run: policy, PREP, the call, PARSE, SAVE.

A generator (``calling.pipeline.Pipeline``) that yields its provider calls, so one
job (``tasks.run_job``) and a chunk of jobs (chunks.py) drive the same code. Every
status change it makes goes through dispatch.transitions (via lifecycle.py).
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import DataError, IntegrityError
from django.utils.translation import gettext_lazy as _
from rq.timeouts import JobTimeoutException

from .. import databases
from ..calling import result_cache, routing
from ..calling.answer import Unusable, usable_answer
from ..calling.pipeline import Pipeline, Prepared, job_timeout_error, record_usage
from ..conf import get_setting
from ..dispatch import transitions
from ..dispatch.steps import with_note, with_step
from ..dispatch.transitions import LeaseLost
from ..functions import AIFunction, Cancelled, Superseded, get_function, json_safe
from ..generation import FieldGeneration, RowData
from ..models import FIELD_FUNCTION, AIJob, ErrorCode, Phase, Status, TenantPolicy
from ..money.quotas import QuotaRefused
from ..privacy import redaction
from ..providers import CompletionRequest, CompletionResponse, ProviderError
from ..providers.tools import normalize as normalize_tools
from ..tenants import concurrency, resolve_tenant
from ..tenants.credentials import resolve
from ..tenants.policies import policy_for
from . import recovery
from .lifecycle import (
    PREP_REFUSALS,
    defer,
    end_at_prep,
    end_unusable,
    fail,
    finish,
    handle_provider_error,
    lease,
    postpone,
    record_request_later,
    refused_by_policy,
)

logger = logging.getLogger("django_ai_fields")


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


def process(job: AIJob) -> Pipeline[str]:
    """Apply the tenant's policy, then generate within its concurrency cap."""
    policy = policy_for(job.tenant)
    refused = refused_by_policy(job, policy)
    if refused:
        return refused
    cap = policy.max_concurrent_jobs if policy is not None else None
    if cap and not concurrency.acquire(job.tenant, job.pk, cap):
        return postpone(job, float(get_setting("CONCURRENCY_RETRY_DELAY")))
    try:
        return (yield from generate(job, policy))
    finally:
        if cap:
            concurrency.release(job.tenant, job.pk)


def generate(job: AIJob, policy: TenantPolicy | None) -> Pipeline[str]:
    job.steps = with_step(job, {"phase": Phase.PREP})  # written with the next update
    try:
        prepared = prepare(job, policy)
        check_still_wanted(job, prepared)
    except PREP_REFUSALS as exc:
        return end_at_prep(job, exc)
    key = cache_key(prepared, job.tenant)
    record_request_later(job, prepared, key)
    if key and not job.force:
        cached = result_cache.lookup(key, prepared.function.result_cache_ttl())
        if cached is not result_cache.MISS:
            empty = CompletionResponse(text="")
            record_usage(job, prepared.provider, prepared.model, empty, cache_hit=True)
            return write_back(job, prepared, cached)
    try:
        # Routes (circuits, rate limits, fallbacks), moderation, one repair call.
        prepared, _response, parsed = yield from usable_answer(job, prepared)
    except routing.Deferred as deferral:
        return defer(job, deferral)
    except QuotaRefused as refusal:
        return end_at_prep(job, refusal)
    except ProviderError as error:
        return handle_provider_error(job, error)
    except Unusable as exc:
        return end_unusable(job, str(exc), exc.response)
    return write_back(job, prepared, parsed)


def check_still_wanted(job: AIJob, prepared: Prepared) -> None:
    """Raise Superseded when the row no longer holds what the job was opened for
    (the rendered inputs' hash differs from the job's) and a newer job exists for
    the row and field: a save opened it while this job ran (saves coalesce only
    into pending or queued jobs), or this job is a lost one run again. That job
    calls for these inputs; this one calling too would make two calls for one input.
    No query unless the hashes differ (docs/reliability.md#one-call-per-input)."""
    if not job.input_hash or prepared.function.input_hash(prepared.data) == job.input_hash:
        return
    if recovery.newer_jobs(job).exists():
        raise Superseded(str(NEWER_JOB_CALLS))


NEWER_JOB_CALLS = _(
    "The row's inputs changed after this job was opened, and a newer job for its row "
    "and field calls for them."
)


def cache_key(prepared: Prepared, tenant: str) -> str:
    """The result cache's key of this request ("" when the function caches nothing)."""
    if prepared.function.result_cache_ttl() <= 0:
        return ""
    return result_cache.cache_key(tenant, prepared.provider, prepared.request)


def function_for(job: AIJob) -> AIFunction:
    if job.function == FIELD_FUNCTION:
        if job.content_type is None:
            raise Cancelled("The job names no target row.")
        return FieldGeneration(job.content_type, job.object_id, job.field_name)
    return get_function(job.function)()


# A job never runs as a tenant its row no longer belongs to (TENANT_RESOLVER).
ROW_MOVED = _(
    "The row no longer belongs to tenant %(tenant)s: this job is not run as that tenant."
)
# prepare()'s default: look the tenant's policy up.
LOOK_UP: Any = object()


def prepare(job: AIJob, policy: TenantPolicy | None = LOOK_UP) -> Prepared:
    """Load the data and build the request, its prompt's PII masked (privacy/).
    Raises Cancelled, or ValueError to refuse."""
    try:
        function = function_for(job)
    except LookupError as exc:
        raise ValueError(str(exc)) from exc
    data = function.prepare(job.payload, job.tenant)
    if isinstance(data, RowData) and resolve_tenant(data.instance) != job.tenant:
        raise Superseded(str(ROW_MOVED) % {"tenant": job.tenant or "-"})
    if policy is LOOK_UP:
        policy = policy_for(job.tenant)
    if isinstance(function, FieldGeneration) and isinstance(data, RowData):
        data.review = function.needs_review(policy)
    prepared = request_for(function, data, job.tenant, policy)
    note_redaction(job, prepared)
    return prepared


def request_for(
    function: AIFunction, data: Any, tenant: str, policy: TenantPolicy | None = LOOK_UP
) -> Prepared:
    """The request ``function`` sends for ``data`` (validated) of ``tenant``, its
    prompt's PII masked as the field and the tenant's policy ask."""
    function.validate(data)
    provider = function.provider_name()
    config, credential = resolve(provider, tenant or None)
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
        temperature=function.options.temperature,
        json_schema=function.json_schema,
        json_output=function.json_output or function.json_schema is not None,
        choices=function.choices(),
        options=dict(function.options.provider_options),
        tools=normalize_tools(function.options.tools),
        attachments=function.attachments(data),
        api=function.options.api,
    )
    credential_id = None if credential is None else credential.pk
    return Prepared(function, data, request, provider, config, masking, credential_id)


def note_redaction(job: AIJob, prepared: Prepared) -> None:
    """Add a step with the masked counts per type (written with the next update)."""
    if prepared.masking is not None:
        counts = dict(prepared.masking.counts)
        job.steps = with_note(job, Phase.PREP, redaction.describe(counts), pii=counts)


def write_back(job: AIJob, prepared: Prepared, parsed: Any) -> str:
    """Save the output and finish the job in one transaction; under review, keep the
    output on the job as a proposal instead, the row untouched (docs/values.md)."""
    token = job.run_token
    output = json_safe(parsed)  # placeholders kept: the job stores no masked value
    parsed = prepared.restored(parsed)
    function = prepared.function
    # The definition the answer was made under, written with the job's last update.
    transitions.write_later(job, definition_hash=function.definition_hash())
    try:
        with databases.atomic(AIJob):
            if isinstance(function, FieldGeneration) and prepared.data.review:
                function.check_unchanged(prepared.data)  # the query the write would be
                transitions.to_review(job, output=output)
                return Status.IN_REVIEW
            function.save_output(parsed, prepared.data)
            # Before finish(), whose job_completed signal also waits for the commit.
            databases.on_commit(lambda: function.after_commit(job, parsed), robust=True)
            finish(job, Status.SUCCEEDED, output=output)
    except Superseded as exc:
        job.run_token = token  # the rolled-back finish() had cleared it in memory
        finish(job, Status.SUPERSEDED, phase=Phase.SAVE, error=str(exc))
        return Status.SUPERSEDED
    except Cancelled as exc:  # the row was deleted while the call ran
        job.run_token = token
        finish(job, Status.CANCELLED, phase=Phase.SAVE, error=str(exc))
        return Status.CANCELLED
    except (IntegrityError, DataError) as exc:
        if prepared.masking is None:
            raise
        # The database's message may quote a restored value: keep it from the job and logs.
        job.run_token = token
        raise redaction.RestoredWriteFailed(type(exc).__name__) from None
    return Status.SUCCEEDED
