"""Provider batch APIs: ``ai_regenerate --batch`` sends a backfill's requests as
batches (OpenAI's Batch API, Anthropic's Message Batches) at half the price, and
the workers poll the batches until they end (docs/batches.md).

- Submit: each job is leased and prepared as in a normal run (prompt, exclusions,
  moderation, quota and budget reserved for the worst case). Jobs with the same
  provider, model and credentials go into one batch of at most
  BATCH_MAX_REQUESTS, each request named by its job's pk. The job then waits
  ``queued`` in phase BATCH with the batch's id: workers skip it, and a save of
  its row meanwhile starts a new job instead of joining it.
- Poll: a scheduled RQ job (every BATCH_POLL_INTERVAL while batches are open; also
  ``ai_requeue``) asks each open batch whether it ended. For an ended batch each
  job is leased again and its result handled as a direct call's would be: an
  AIUsage row at batch prices, the reservation settled, the answer parsed and
  written back only if the row's inputs did not change (else ``superseded``). A
  failed or expired request retries as a normal job, or fails, like any
  provider error. Batch answers get no repair call: an invalid one fails the job.
  The poll visits every database and schema holding jobs, and handles each batch
  in its jobs' context (dispatch/context.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Min

from .. import databases, row_keys
from ..calling import moderation
from ..calling.answer import checked_answer
from ..calling.pipeline import Prepared, bill_for, book, record_usage, reserve_quota
from ..conf import get_setting
from ..declare.outputs import InvalidOutput
from ..dispatch import backend, context, transitions
from ..dispatch.context import Context
from ..dispatch.transitions import PROGRESS, LeaseLost
from ..fields import AIFieldMixin
from ..functions import Cancelled, Superseded
from ..intake.outbox import request_jobs
from ..models import AIJob, ErrorCode, Phase, ProviderBatch, Status
from ..money import quotas
from ..providers import (
    CompletionResponse,
    ProviderError,
    build_provider,
    provider_class,
)
from ..providers.base import BatchState, Provider
from ..queues import PERIODIC_POLL
from ..tenants.credentials import batch_credentials
from ..tenants.policies import policy_for
from . import engine, lifecycle
from .lifecycle import finish, update_job

logger = logging.getLogger("django_ai_fields")

# Holds the RQ job id of the scheduled poll.
POLL_KEY = "django_ai_fields:batch-poll-scheduled"
# RQ's timeout for one poll: an ended batch of BATCH_MAX_REQUESTS jobs is written back in it.
POLL_TIMEOUT = 3600
NO_RESULT = "The provider's batch ended without a result for this request."

Outcome = CompletionResponse | ProviderError


def supports_batch(provider: str) -> bool:
    try:
        return provider_class(provider).supports_batch
    except (ImportError, ValueError):
        return False


# -- submit ---------------------------------------------------------------------------


@dataclass
class SubmitReport:
    batches: list[str] = field(default_factory=list)
    submitted: int = 0
    # Jobs that did not go into a batch, by what became of them.
    others: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    def merge(self, other: SubmitReport) -> None:
        self.batches += other.batches
        self.submitted += other.submitted
        self.others.update(other.others)
        self.errors += other.errors


def request(
    pairs: Sequence[tuple[models.Model, AIFieldMixin]], *, triggered_by: str = "command"
) -> tuple[list[int], SubmitReport]:
    """New jobs for these (row, AI field) pairs, sent in provider batches; returns
    the job ids and what was sent. A field that already waits in a batch for its
    row is left out: it would be paid for twice."""
    batched = already_batched(pairs)
    with databases.atomic(AIJob):
        jobs = [
            job
            for row, ai_field in pairs
            if (type(row), row_keys.key_of(row), ai_field.name) not in batched
            for job in request_jobs(
                row, [ai_field], triggered_by=triggered_by, force=True, enqueue_new=False
            )
        ]
    report = submit([job.pk for job in jobs])
    if len(jobs) < len(pairs):
        report.others["already in a batch"] += len(pairs) - len(jobs)
    return [job.pk for job in jobs], report


def already_batched(
    pairs: Sequence[tuple[models.Model, AIFieldMixin]],
) -> set[tuple[type[models.Model], str, str]]:
    """(model, object id, field) of the pairs whose job waits in a provider batch."""
    found = set()
    # A field's jobs belong to the model declaring it (multi-table inheritance).
    for owner in {ai_field.model_class for _row, ai_field in pairs}:
        owned = [(row, f) for row, f in pairs if f.model_class is owner]
        waiting = AIJob.objects.filter(
            content_type=ContentType.objects.get_for_model(owner),
            object_id__in=[row_keys.key_of(row) for row, _field in owned],
            status=Status.QUEUED,
            phase=Phase.BATCH,
        )
        hits = set(waiting.values_list("object_id", "field_name"))
        found |= {
            (type(row), row_keys.key_of(row), f.name)
            for row, f in owned
            if (row_keys.key_of(row), f.name) in hits
        }
    return found


def submit(job_ids: Iterable[int]) -> SubmitReport:
    """Lease, prepare and send these jobs in provider batches."""
    report = SubmitReport()
    size = max(1, int(get_setting("BATCH_MAX_REQUESTS")))
    # One batch per provider, model and credential: a batch never mixes credentials.
    groups: dict[tuple[str, str, int | None, str], list[tuple[AIJob, Prepared]]] = {}
    for job_id in job_ids:
        job = lifecycle.lease(job_id)
        if job is None:
            report.others["skipped"] += 1  # not open any more (a worker took it)
            continue
        prepared = prepare_leased(job)
        if isinstance(prepared, str):
            report.others[prepared] += 1
            continue
        config = json.dumps(prepared.config, sort_keys=True, default=str)
        key = (prepared.provider, prepared.model, prepared.credential_id, config)
        group = groups.setdefault(key, [])
        group.append((job, prepared))
        if len(group) >= size:  # send a full batch now: its jobs are leased meanwhile
            send(group, report)
            group.clear()
    for group in groups.values():
        if group:
            send(group, report)
    if report.batches:
        schedule_poll()
    return report


def prepare_leased(job: AIJob) -> Prepared | str:
    try:
        return prepare(job)
    except LeaseLost:
        return "lease-lost"
    except Exception as exc:
        logger.exception("AI job %s: preparing it for a batch crashed", job.pk)
        lifecycle.fail(job, ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}")
        return Status.FAILED


def prepare(job: AIJob) -> Prepared | str:
    """PREP as in a normal run, then the worst case reserved. Returns the prepared
    request, or the status the job ended in (or went back to the queue with)."""
    policy = policy_for(job.tenant)
    refused = lifecycle.refused_by_policy(job, policy)
    if refused:
        return refused
    try:
        prepared = engine.prepare(job, policy)
        moderation.check(prepared.request.prompt, moderation.INPUT)
        if not supports_batch(prepared.provider):
            return lifecycle.postpone(job, 0)  # a normal run instead
        reservations = reserve_quota(job, prepared)
    except lifecycle.PREP_REFUSALS as exc:
        return lifecycle.end_at_prep(job, exc)
    except ProviderError as error:  # moderation
        return lifecycle.handle_provider_error(job, error)
    key = engine.cache_key(prepared, job.tenant)
    lifecycle.record_request(job, prepared, key, reservations=reservations)
    return prepared


def send(entries: list[tuple[AIJob, Prepared]], report: SubmitReport) -> None:
    """Submit one batch; its jobs then wait for it, or fail when it was refused."""
    first = entries[0][1]
    provider = build_provider(first.provider, first.config)
    try:
        batch_id = provider.submit_batch([(str(job.pk), p.request) for job, p in entries])
    except ProviderError as error:
        report.errors.append(f"{first.provider}/{first.model}: {error.message}")
        for job, _prepared in entries:
            refused(job, error)
        report.others[Status.FAILED] += len(entries)
        return
    report.batches.append(batch_id)
    ProviderBatch.objects.create(
        batch_id=batch_id,
        provider=first.provider,
        uses_settings=first.credential_id is None,
        credential_id=first.credential_id,
        base_url=first.config.get("BASE_URL") or "",
    )
    for job, _prepared in entries:
        try:
            transitions.wait_in_batch(job, batch_id, PROGRESS[Phase.AI_CALL])
        except LeaseLost:  # the sweep took it back: its result is only accounted for
            AIJob.objects.filter(pk=job.pk).update(batch_id=batch_id)
            continue
        report.submitted += 1


def refused(job: AIJob, error: ProviderError) -> None:
    """The provider refused the batch: give the reservation back and fail the job
    (running ai_regenerate --batch again makes new jobs)."""
    with contextlib.suppress(LeaseLost), databases.atomic(AIJob):
        reservations = job.reservations
        update_job(job, reservations=[])
        quotas.release(reservations)
        message = f"Sending the provider batch failed: {error.message}"
        finish(job, Status.FAILED, phase=Phase.AI_CALL, error_code=error.code, error=message)


# -- poll -----------------------------------------------------------------------------


@dataclass
class PollReport:
    running: int = 0
    ended: int = 0
    # What became of the jobs of ended batches, by status.
    jobs: Counter[str] = field(default_factory=Counter)

    def __str__(self) -> str:
        jobs = ", ".join(f"{n} {status}" for status, n in sorted(self.jobs.items()))
        return f"{self.running} provider batch(es) still running, {self.ended} ended" + (
            f" ({jobs})" if jobs else ""
        )


def open_batches(visit: Context | None = None) -> list[tuple[str, Context]]:
    """Batches some job seen from ``visit`` (here, by default) still waits for (or
    still has to be accounted for), each with the context its jobs run in."""
    visit = visit or context.current()
    rows = AIJob.objects.exclude(batch_id="").values("batch_id").annotate(first=Min("pk"))
    first = {row["batch_id"]: row["first"] for row in rows.order_by("batch_id")}
    contexts = {pk: ctx for ctx, pks in context.split(visit, list(first.values())) for pk in pks}
    return [(batch_id, contexts[pk]) for batch_id, pk in first.items()]


def poll() -> PollReport:
    """Look at every open batch once, in every database and schema; handle the
    results of those that ended."""
    report = PollReport()
    for visit in context.visits():
        with context.restore(visit):
            batches = open_batches(visit)
        for batch_id, job_context in batches:
            try:
                with context.restore(job_context):
                    poll_batch(batch_id, report)
            except Exception:  # one broken batch must not hold up the others
                logger.exception("Polling provider batch %s failed", batch_id)
                report.running += 1
    return report


def poll_batch(batch_id: str, report: PollReport) -> None:
    jobs = list(
        AIJob.objects.filter(batch_id=batch_id).select_related("content_type").order_by("pk")
    )
    if not jobs:
        return
    waiting = [job for job in jobs if job.status == Status.QUEUED and job.phase == Phase.BATCH]
    provider = submitted_with(batch_id, jobs[0].provider)
    state = batch_state(provider, batch_id)
    if not state.ended:
        report.running += 1
        return
    prepared = {job.pk: prepared_again(job) for job in waiting}
    requests = {str(pk): p.request for pk, p in prepared.items() if isinstance(p, Prepared)}
    results: dict[str, Outcome] = {}
    if state.error is None:
        try:
            results = provider.batch_results(batch_id, requests)
        except ProviderError as error:
            if error.retryable:
                report.running += 1  # look again at the next poll
                return
            state.error = error
    missing = state.error or ProviderError(ErrorCode.PROVIDER_UNAVAILABLE, NO_RESULT)
    for job in waiting:
        outcome = results.get(str(job.pk), missing)
        report.jobs[handle(job.pk, prepared[job.pk], outcome)] += 1
    waiting_ids = {job.pk for job in waiting}
    for job in jobs:
        if job.pk not in waiting_ids:
            account(job, batch_id, results.get(str(job.pk)))
    report.ended += 1


def submitted_with(batch_id: str, provider_name: str) -> Provider:
    """The provider with the credential the batch was submitted with (its record);
    one it cannot be read with fails its jobs ``auth``, sending nothing anywhere."""
    record = ProviderBatch.objects.select_related("credential").filter(batch_id=batch_id).first()
    if record is None:
        problem = f"No record of the credential provider batch {batch_id} was submitted with."
        config = {"API_KEY": "", "BASE_URL": "", "CREDENTIAL_ERROR": problem}
        return build_provider(provider_name, config)
    return build_provider(record.provider, batch_credentials(record))


def batch_state(provider: Provider, batch_id: str) -> BatchState:
    try:
        return provider.batch_state(batch_id)
    except ProviderError as error:
        if error.retryable:
            return BatchState(ended=False)  # look again at the next poll
        return BatchState(ended=True, error=error)  # the batch is gone, or the key refused


def prepared_again(job: AIJob) -> Prepared | Exception:
    """The job's request as prepared now (not leased: only reads), or why there is none."""
    try:
        return engine.prepare(job)
    except (Cancelled, Superseded, ValueError) as exc:
        return exc


def handle(job_id: int, prepared: Prepared | Exception, outcome: Outcome) -> str:
    """Lease a waiting job and finish it with its result; returns its status."""
    job = lifecycle.lease(job_id, batch=True)
    if job is None:
        return "skipped"  # cancelled meanwhile (accounted for at the next poll)
    try:
        return settle_job(job, prepared, outcome)
    except LeaseLost:
        return "lease-lost"
    except Exception as exc:
        logger.exception("AI job %s: handling its batch result crashed", job_id)
        lifecycle.fail(job, ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}")
        return Status.FAILED


def settle_job(job: AIJob, prepared: Prepared | Exception, outcome: Outcome) -> str:
    """Book the request's result (usage, quota, the job's tokens and cost: priced at
    the model it was submitted with), then finish the job with it."""
    response, error = split(outcome)
    reservations = list(job.reservations)
    book(
        job, job.provider, job.model, response, error=error, reservations=reservations, batch_id=""
    )
    if isinstance(prepared, Exception):  # the row was deleted or its data refused meanwhile
        return lifecycle.end_at_prep(job, prepared)
    if error is not None:
        return lifecycle.handle_provider_error(job, error)
    return write_answer(job, prepared, response)


def write_answer(job: AIJob, prepared: Prepared, response: CompletionResponse) -> str:
    """Parse the answer and write it back, unless the row's inputs changed since submit."""
    if prepared.function.input_hash(prepared.data) != job.input_hash:
        message = "The row's inputs changed while the batch ran; a newer job handles them."
        finish(job, Status.SUPERSEDED, phase=Phase.SAVE, error=message)
        return Status.SUPERSEDED
    try:
        parsed = checked_answer(prepared, response)
    except InvalidOutput as exc:
        return lifecycle.end_unusable(job, str(exc), response)
    except ProviderError as refusal:  # output moderation
        finish(
            job, Status.FAILED, phase=Phase.PARSE, error_code=refusal.code, error=refusal.message
        )
        return Status.FAILED
    return engine.write_back(job, prepared, parsed)


def account(job: AIJob, batch_id: str, outcome: Outcome | None) -> None:
    """A job of an ended batch that no longer waits for it (cancelled, or retried as a
    normal job): log its request's usage and charge it to the quotas, once."""
    if job.status == Status.RUNNING:
        return  # being handled right now (or a normal run): the next poll looks again
    with databases.atomic(AIJob):
        mine = AIJob.objects.filter(pk=job.pk, batch_id=batch_id).exclude(status=Status.RUNNING)
        if not mine.update(batch_id="", reservations=[]) or outcome is None:
            return
        response, error = split(outcome)
        bill = bill_for(job.provider, job.model, response, error)
        record_usage(job, job.provider, job.model, response, bill, error=error)
        # The zero-unit reservations release_cancelled() left:
        quotas.settle(job.reservations, bill.demand())


def split(outcome: Outcome) -> tuple[CompletionResponse, ProviderError | None]:
    """(the answer, or an empty one; the error, or None)."""
    if isinstance(outcome, ProviderError):
        return CompletionResponse(text=""), outcome
    return outcome, None


def release_cancelled(job_id: int) -> None:
    """A waiting job was cancelled: give its reserved units back now. The provider
    may still answer (and bill) its request: account() charges that when the batch
    ends, against the same quota rows (kept with zero units)."""
    with databases.atomic(AIJob):
        row = AIJob.objects.select_for_update().filter(
            pk=job_id, status=Status.CANCELLED, phase=Phase.BATCH
        )
        reservations = row.values_list("reservations", flat=True).first()
        if reservations:
            row.update(reservations=quotas.released(reservations))
            quotas.release(reservations)


# -- scheduling -----------------------------------------------------------------------


def schedule_poll() -> None:
    """Make sure one poll is scheduled, BATCH_POLL_INTERVAL from now (one Redis
    SET NX when it is). Needs ``rqworker --with-scheduler``, like the sweep."""
    interval = int(get_setting("BATCH_POLL_INTERVAL"))
    if interval <= 0:
        return
    try:
        backend.schedule_once(POLL_KEY, interval, PERIODIC_POLL, timeout=POLL_TIMEOUT)
    except Exception as exc:
        logger.warning("Could not schedule the provider batch poll: %s", exc)


def keep_polling() -> None:
    """Called by the sweep: re-arm the poll if batches are open and none is scheduled
    (Redis was flushed, or a poll died)."""
    if AIJob.objects.exclude(batch_id="").exists():
        schedule_poll()
