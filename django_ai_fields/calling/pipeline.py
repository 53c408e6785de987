"""One provider call with its bookkeeping: quota reservation before, an AIUsage
row and the reservation's settlement after, whatever happened."""

from __future__ import annotations

import json
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol, TypeVar

from django.db import transaction
from rq.timeouts import JobTimeoutException

from .. import observability
from ..conf import get_setting
from ..declare.file_inputs import reserve_bytes
from ..functions import AIFunction
from ..models import AIJob, AIUsage, ErrorCode
from ..money import quotas, usage_rollup
from ..money.pricing import micro_to_usd, price_as
from ..money.tool_fees import fee_usd
from ..privacy.redaction import Masking
from ..providers import (
    CompletionRequest,
    CompletionResponse,
    Provider,
    ProviderError,
    build_provider,
)
from . import streaming

T = TypeVar("T")


class SaveJob(Protocol):
    """Writes columns of the running job under the run's lease."""

    def __call__(self, **columns: Any) -> None: ...


@dataclass
class Prepared:
    """Everything PREP found out: the function, its data and the request to send."""

    function: AIFunction
    data: Any
    request: CompletionRequest
    provider: str
    # Resolved credentials: the tenant's ProviderCredential, else settings.
    config: dict[str, Any]
    # The prompt's PII placeholders and their values: in this worker's memory only.
    masking: Masking | None = field(default=None, repr=False, compare=False)

    @property
    def model(self) -> str:
        return self.request.model

    def restored(self, parsed: Any) -> Any:
        """The answer as it is written: masked values put back where the function
        asks for it (``restore_pii``); AIJob.output keeps the placeholders."""
        if self.masking is None or not self.function.restore_pii:
            return parsed
        return self.function.restore_output(parsed, self.masking)


@dataclass
class ProviderCall:
    """The one point where a job's pipeline waits: a provider call to make.

    Pipelines are generators that yield a ProviderCall and get its response back
    (or its exception thrown in). ``drive()`` makes the calls one by one in this
    thread; a chunk job (jobs/chunks.py) makes many at once on an event loop while
    every database query stays in its own thread."""

    job: AIJob
    prepared: Prepared
    provider: Provider

    @property
    def streams(self) -> bool:
        return bool(getattr(self.prepared.function, "stream", False))

    def run(self) -> CompletionResponse:
        return streaming.complete(self.job, self.prepared, self.provider)

    async def arun(self) -> CompletionResponse:
        return await self.provider.acomplete(self.prepared.request)


# A job's work up to its result: yields the provider calls it waits for.
Pipeline = Generator[ProviderCall, CompletionResponse, T]


def drive(pipeline: Pipeline[T]) -> T:
    """Run a pipeline to its end, making each provider call in this thread."""
    try:
        call = next(pipeline)
        while True:
            try:
                response = call.run()
            except BaseException as exc:  # raised where the pipeline waits for the call
                call = pipeline.throw(exc)
            else:
                call = pipeline.send(response)
    except StopIteration as done:
        return done.value


def call_provider(
    job: AIJob, prepared: Prepared, save_job: SaveJob
) -> Pipeline[CompletionResponse]:
    """Reserve quota, call, then log and settle. Raises QuotaRefused or ProviderError.
    ``save_job(**columns)`` writes job columns under the run's lease."""
    reservations = reserve_quota(job, prepared)
    if reservations:
        save_job(reservations=reservations)
    started = time.monotonic()
    observed = observability.call_started(job, prepared)
    error: ProviderError | None = None
    response = CompletionResponse(text="")
    try:
        provider = build_provider(prepared.provider, prepared.config)
        response = yield ProviderCall(job, prepared, provider)
    except ProviderError as exc:
        # An SDK may wrap RQ's timeout (raised mid-request) as a connection error.
        error = job_timeout_error() if caused_by_job_timeout(exc) else exc
    except JobTimeoutException:
        error = job_timeout_error()
    duration_ms = int((time.monotonic() - started) * 1000)
    with transaction.atomic():
        usage = record_usage(job, prepared, response, error=error, duration_ms=duration_ms)
        if reservations:
            used = quotas.actual(
                prepared.model, None if error else response, provider=prepared.provider
            )
            quotas.settle(reservations, used)
            save_job(reservations=[])
            quotas.check_alerts(job.tenant, reservations)
    observability.call_finished(observed, job, usage, error)
    if error is not None:
        raise error
    return response


def reserve_quota(job: AIJob, prepared: Prepared) -> list[quotas.Reservation]:
    """Reserve the call's worst case against the tenant's quotas and the budget."""
    return quotas.reserve(job.tenant, worst_case(prepared), prepared.function.budget())


def worst_case(prepared: Prepared) -> quotas.Demand:
    """The most the prepared call can use: every byte sent a token, plus max_tokens."""
    request = prepared.request
    sent = request.system + request.prompt + json.dumps(request.json_schema or "")
    sent_bytes = len(sent.encode()) + 16 + reserve_bytes(request.attachments)
    return quotas.worst_case(prepared.model, sent_bytes, request.max_tokens, prepared.provider)


def priced_cost(model: str, response: CompletionResponse, provider: str = "") -> Decimal | None:
    """Exact USD cost of one answered call, priced by the model we asked for (or
    its PRICE_AS); a batch API's answer at the batch rate. None: no known price."""
    if not response.billable:
        return Decimal(0)
    micro = quotas.answer_cost_micro(model, response, provider=provider)
    return None if micro is None else micro_to_usd(micro)


def call_cost(model: str, response: CompletionResponse, provider: str = "") -> Decimal:
    """``priced_cost`` for a job's running total: an unknown price adds nothing
    there (its AIUsage row records the cost as unknown)."""
    return priced_cost(model, response, provider) or Decimal(0)


def record_usage(
    job: AIJob,
    prepared: Prepared,
    response: CompletionResponse,
    *,
    error: ProviderError | None = None,
    duration_ms: int = 0,
    cache_hit: bool = False,
) -> AIUsage:
    cost: Decimal | None = Decimal(0)
    if error is None and not cache_hit:
        cost = priced_cost(prepared.model, response, prepared.provider)
    priced = price_as(prepared.provider, prepared.model)
    return usage_rollup.log_call(
        tenant=job.tenant,
        job=job,
        provider=prepared.provider,
        model=response.model or prepared.model,
        input_tokens=response.input_tokens,
        output_tokens=response.output_tokens,
        cached_tokens=response.cached_tokens,
        cache_write_tokens=response.cache_creation_tokens,
        reasoning_tokens=response.reasoning_tokens,
        cost_usd=cost,
        gateway_cost_usd=response.gateway_cost_usd,
        priced_as=priced if priced != prepared.model else "",
        tool_calls=response.tool_uses,
        # Tool fees are a part of cost_usd (nothing when the call cost nothing).
        tool_cost_usd=fee_usd(response.tool_uses) if cost else Decimal(0),
        duration_ms=duration_ms,
        success=error is None,
        cache_hit=cache_hit,
        error_code=error.code if error else "",
    )


def job_timeout_error() -> ProviderError:
    return ProviderError(
        ErrorCode.TIMEOUT,
        f"The job ran longer than JOB_TIMEOUT ({get_setting('JOB_TIMEOUT')} s).",
    )


def caused_by_job_timeout(exc: BaseException) -> bool:
    seen: set[int] = set()
    cause = exc.__cause__ or exc.__context__
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, JobTimeoutException):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False
