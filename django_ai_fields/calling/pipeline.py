"""One provider call with its bookkeeping. Before it, one transaction: the quota
reservation of its worst case and its AIUsage row logged ``sent`` at that worst
case (``log_before_sending``), so a worker killed mid-call leaves the call counted,
never lost. After it, whatever happened, one transaction (``book``): the row
settled to what the call used, the reservation likewise, the job charged
(money/bills.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

from rq.timeouts import JobTimeoutException

from .. import databases
from ..conf import get_setting
from ..declare.file_inputs import reserve_bytes
from ..dispatch import transitions
from ..dispatch.steps import with_step, with_tool_calls
from ..functions import AIFunction
from ..models import AIJob, AIUsage, ErrorCode, Phase
from ..money import quotas, usage_rollup
from ..money.bills import NO_ANSWER, Bill
from ..money.pricing import micro_to_usd, price_as
from ..observability.calls import call_finished, call_started
from ..privacy.redaction import Masking
from ..providers import (
    CompletionRequest,
    CompletionResponse,
    Provider,
    ProviderError,
    build_provider,
)
from ..providers.base import INPUT_TOKENS, OUTPUT_TOKENS, ReportedNumbersError
from ..providers.reported import checked
from . import streaming

T = TypeVar("T")


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
    # The pk of the tenant's ProviderCredential ``config`` came from; None: settings.
    credential_id: int | None = None

    @property
    def model(self) -> str:
        return self.request.model

    def restored(self, parsed: Any) -> Any:
        """The answer as it is written: masked values put back where the function
        asks for it (``restore_pii``); AIJob.output keeps the placeholders."""
        if self.masking is None or not self.function.options.restore_pii:
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
        return self.prepared.function.options.stream

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


def call_provider(job: AIJob, prepared: Prepared) -> Pipeline[CompletionResponse]:
    """Reserve quota, call, then book the call. Raises QuotaRefused or ProviderError."""
    reservations, sent = log_before_sending(job, prepared)
    started = time.monotonic()
    observed = call_started(
        job, prepared.request, prepared.provider, streamed=prepared.function.options.stream
    )
    error: ProviderError | None = None
    response = CompletionResponse(text="")
    try:
        provider = build_provider(prepared.provider, prepared.config)
        response = checked((yield ProviderCall(job, prepared, provider)))
    except ProviderError as exc:
        # An SDK may wrap RQ's timeout (raised mid-request) as a connection error.
        error = job_timeout_error() if caused_by_job_timeout(exc) else exc
    except JobTimeoutException:
        error = job_timeout_error()
    if isinstance(error, ReportedNumbersError):
        estimate_unknown_counts(error, prepared.request)
    duration_ms = int((time.monotonic() - started) * 1000)
    usage = book(
        job,
        prepared.provider,
        prepared.model,
        response,
        error=error,
        reservations=reservations,
        duration_ms=duration_ms,
        sent=sent,
    )
    call_finished(observed, job, usage, error)
    if error is not None:
        raise error
    return response


def log_before_sending(
    job: AIJob, prepared: Prepared
) -> tuple[list[quotas.Reservation], AIUsage]:
    """Reserve the call's worst case and log the call ``sent`` at it, in one
    transaction, before the request leaves. The reservations stay in this run's
    memory only (not on the job): a run killed mid-call leaves them spent, and its
    usage row counted at the worst case; the sweep releases neither."""
    demand = worst_case(prepared)
    request = prepared.request
    with databases.atomic(AIJob):
        # The job's request columns (AI_CALL), with the check that this run still
        # holds it: a run that lost its lease neither reserves nor calls.
        transitions.write_unwritten(job)
        reservations = quotas.reserve(job.tenant, demand, prepared.function.budget())
        sent = usage_rollup.log_sent(
            tenant=job.tenant,
            job=job,
            provider=prepared.provider,
            model=prepared.model,
            input_tokens=sent_bytes(request),
            output_tokens=request.max_tokens,
            cost_usd=worst_cost_usd(demand),
            success=False,
        )
    return reservations, sent


def worst_cost_usd(demand: quotas.Demand) -> Decimal | None:
    """A reservation's worst-case cost in dollars (None: the model has no price)."""
    return None if demand.cost_micro is None else micro_to_usd(Decimal(demand.cost_micro))


def book(
    job: AIJob,
    provider: str,
    model: str,
    response: CompletionResponse,
    *,
    error: ProviderError | None,
    reservations: list[quotas.Reservation],
    duration_ms: int = 0,
    sent: AIUsage | None = None,
    **columns: Any,
) -> AIUsage:
    """After a call, in one transaction: its usage row (``sent``, logged before the
    call, settled; else a new one), the reservation settled to what it used (a
    batch job's reservations, kept on the job, cleared with ``columns`` in the same
    write). An answer's tokens and cost are charged to the job, which moves on to
    PARSE, with its next write (transitions.write_later). The bill is computed once."""
    bill = bill_for(provider, model, response, error)
    if bill.answered:
        charge(job, bill, answer_of(response, error))
    on_job = bool(reservations) and sent is None
    if on_job:
        columns["reservations"] = []
    with databases.atomic(AIJob):
        usage = record_usage(
            job, provider, model, response, bill, error=error, duration_ms=duration_ms, sent=sent
        )
        held = write_if_held(job, columns)
        if reservations:
            # Reservations kept on a job whose run lost its lease were released by
            # the sweep: the call then counts in full.
            mine = reservations if held or not on_job else quotas.released(reservations)
            quotas.settle(mine, bill.demand())
            quotas.check_alerts(job.tenant, reservations)
    return usage


def write_if_held(job: AIJob, columns: dict[str, Any]) -> bool:
    """Write ``columns`` while the run holds the job; False when it lost it (its
    call is booked all the same: the next transition of this run raises)."""
    if not columns:
        return True
    try:
        with databases.atomic(AIJob):  # a savepoint: the usage row stays
            transitions.write(job, **columns)
    except transitions.LeaseLost:
        return False
    return True


def bill_for(
    provider: str, model: str, response: CompletionResponse, error: ProviderError | None
) -> Bill:
    """What the call costs: nothing when it failed with no answer; an answer refused
    for its numbers costs what was read of it (``answer_of``)."""
    if error is not None and not isinstance(error, ReportedNumbersError):
        return NO_ANSWER
    return Bill.for_answer(model, answer_of(response, error), provider=provider)


def answer_of(response: CompletionResponse, error: ProviderError | None) -> CompletionResponse:
    """The answer a call is logged and charged for: an answer refused for its numbers
    (ReportedNumbersError) counts with the numbers in range and our estimates of the
    others, never the out-of-range ones."""
    return error.answer if isinstance(error, ReportedNumbersError) else response


def estimate_unknown_counts(error: ReportedNumbersError, request: CompletionRequest) -> None:
    """Counts the provider gave out of range, at this app's worst case for the request."""
    if INPUT_TOKENS in error.unknown:
        error.answer.input_tokens = sent_bytes(request)
    if OUTPUT_TOKENS in error.unknown:
        error.answer.output_tokens = request.max_tokens


def charge(job: AIJob, bill: Bill, response: CompletionResponse) -> None:
    """Add an answered call to the job: tokens, cost, and its step into PARSE (with
    the tokens, cost and hosted tool calls), written with the job's next write."""
    parse = {"phase": Phase.PARSE, "progress": transitions.PROGRESS[Phase.PARSE]}
    step = with_step(
        job,
        parse,
        input_tokens=bill.input_tokens,
        output_tokens=bill.output_tokens,
        cost_usd=str(bill.charged_usd),
    )
    transitions.write_later(
        job,
        **parse,
        input_tokens=job.input_tokens + bill.input_tokens,
        output_tokens=job.output_tokens + bill.output_tokens,
        cost_usd=job.cost_usd + bill.charged_usd,
        steps=with_tool_calls(job, step, response),
    )


def reserve_quota(job: AIJob, prepared: Prepared) -> list[quotas.Reservation]:
    """Reserve the call's worst case against the tenant's quotas and the budget."""
    return quotas.reserve(job.tenant, worst_case(prepared), prepared.function.budget())


def worst_case(prepared: Prepared) -> quotas.Demand:
    """The most the prepared call can use: every byte sent a token, plus max_tokens."""
    request = prepared.request
    return quotas.worst_case(
        prepared.model, sent_bytes(request), request.max_tokens, prepared.provider
    )


def sent_bytes(request: CompletionRequest) -> int:
    """The bytes a request sends: the most input tokens it can cost."""
    sent = request.system + request.prompt + json.dumps(request.json_schema or "")
    return len(sent.encode()) + 16 + reserve_bytes(request.attachments)


def record_usage(
    job: AIJob,
    provider: str,
    model: str,
    response: CompletionResponse,
    bill: Bill = NO_ANSWER,
    *,
    error: ProviderError | None = None,
    duration_ms: int = 0,
    cache_hit: bool = False,
    sent: AIUsage | None = None,
) -> AIUsage:
    """The call's AIUsage row, priced by ``bill`` (the model we asked for): ``sent``
    (logged before the call) settled, else a new row."""
    response = answer_of(response, error)
    priced = price_as(provider, model)
    values = usage_values(response, bill, error, priced if priced != model else "")
    if sent is not None:
        return usage_rollup.settle_call(sent, **values, duration_ms=duration_ms)
    return usage_rollup.log_call(
        tenant=job.tenant,
        job=job,
        provider=provider,
        model=model,
        **values,
        duration_ms=duration_ms,
        cache_hit=cache_hit,
    )


def usage_values(
    response: CompletionResponse, bill: Bill, error: ProviderError | None, priced_as: str
) -> dict[str, Any]:
    """What a call used, as AIUsage columns (the model asked for is priced; the name
    the answer claims is kept only beside it)."""
    return dict(
        reported_model=response.model,
        input_tokens=response.input_tokens,
        output_tokens=response.output_tokens,
        cached_tokens=response.cached_tokens,
        cache_write_tokens=response.cache_creation_tokens,
        reasoning_tokens=response.reasoning_tokens,
        cost_usd=bill.cost_usd,
        gateway_cost_usd=response.gateway_cost_usd,
        priced_as=priced_as,
        tool_calls=response.tool_uses,
        # Tool fees are a part of cost_usd (nothing when the call cost nothing).
        tool_cost_usd=bill.tool_cost_usd,
        success=error is None,
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
