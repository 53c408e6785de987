"""The sweep: enqueue jobs that never reached Redis and jobs whose worker died.

Run by ``ai_requeue`` and periodically by the workers themselves through the
RQ scheduler (``rqworker --with-scheduler``; the entry point is tasks.periodic_sweep).

One sweep visits every database and schema holding jobs (dispatch.context.visits:
each tenant schema with django-tenants), inside each in turn; the jobs it hands over
go to the queue with their own context, so each runs where its row is.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import DatabaseError
from django.utils import timezone

from ..conf import get_setting
from ..dispatch import backend, context, handover, tally, transitions
from ..dispatch.context import Context
from ..dispatch.transitions import recover_lost
from ..models import AIJob, ErrorCode, Phase, Status
from ..money import usage_rollup
from ..queues import PERIODIC_SWEEP
from ..shared_state import store
from . import drains, recovery, stuck
from .batches import keep_polling

logger = logging.getLogger("django_ai_fields")

# Holds the RQ job id of the scheduled periodic sweep.
SCHEDULED_KEY = "django_ai_fields:sweep-scheduled"
# When the scheduled sweep is due, and whether a late one was run directly.
DUE_KEY = "django_ai_fields:sweep-due"
KICKED_KEY = "django_ai_fields:sweep-kicked"
# The most jobs each part of one sweep takes on (the next sweep takes the rest).
JOBS_PER_SWEEP = 1000


@dataclass
class SweepReport:
    enqueued: int = 0
    recovered: int = 0
    failed: int = 0
    unreachable: int = 0
    stuck: int = 0  # stuck jobs logged (jobs/stuck.py), each once

    def __str__(self) -> str:
        return (
            f"{self.enqueued} pending job(s) enqueued, {self.recovered} lost job(s) requeued, "
            f"{self.failed} lost job(s) failed, {self.unreachable} left pending (Redis unreachable)"
            + (f", {self.stuck} stuck job(s) logged" if self.stuck else "")
        )


def sweep(*, all_pending: bool = False, now: datetime | None = None) -> SweepReport:
    """Enqueue stale pending jobs, orphaned queued jobs, and recover lost running jobs,
    in every database and schema holding jobs.

    ``all_pending`` enqueues every pending job, not only those older than PENDING_GRACE.
    """
    now = now or timezone.now()
    report = SweepReport()
    failed_runs = recovery.failed_runs()  # read once from the queue, for every visit
    queue = stuck.queue_state()  # likewise, for the stuck jobs' reasons
    errors: list[DatabaseError] = []
    visits = list(context.visits())
    for visit in visits:
        try:
            with context.restore(visit):
                sweep_here(visit, report, failed_runs, all_pending=all_pending, now=now)
                report.stuck += stuck.report_here(visit, queue, now)
        except DatabaseError as exc:  # one schema's broken table must not stop the rest
            logger.warning("Sweep skipped %s: %s", describe(visit), exc)
            errors.append(exc)
    if errors and len(errors) == len(visits):
        raise errors[0]  # the database is down: the caller reports it
    return report


def sweep_here(
    visit: Context,
    report: SweepReport,
    failed_runs: list[str],
    *,
    all_pending: bool,
    now: datetime,
) -> None:
    """One visit's part of the sweep: the jobs of one database (and schema)."""
    job_ids = recover_lost_jobs(now, report)
    # Runs RQ itself saw die (killed work horse...): recovered now, not after JOB_TIMEOUT.
    dead_runs, failed = recovery.recover_failed_runs(failed_runs)
    job_ids += dead_runs
    report.recovered += len(dead_runs)
    report.failed += failed
    pending = AIJob.objects.filter(status=Status.PENDING)
    if not all_pending:
        pending = pending.filter(
            updated_at__lt=now - timedelta(seconds=get_setting("PENDING_GRACE"))
        )
    job_ids += pending.order_by("pk").values_list("pk", flat=True)[:JOBS_PER_SWEEP]
    job_ids += orphaned_queued_jobs(now)
    job_ids = list(dict.fromkeys(job_ids))  # recovered jobs are pending now: listed twice
    groups = context.split(visit, job_ids)
    for job_context in [visit, *(c for c, _ids in groups if c != visit)]:
        with contextlib.suppress(Exception):  # Redis down: to_drain reports it
            handover.forget_lost_drain(job_context)
    for job_context, ids in groups:
        enqueued = handover.to_drain(ids, job_context)
        report.enqueued += enqueued
        report.unreachable += len(ids) - enqueued
    with contextlib.suppress(Exception):  # the queue down: the next sweep looks again
        if handover.waiting_drain(visit) is None and drains.waiting_jobs().exists():
            # Jobs wait for a drain and none is coming (the one they were given died
            # with a worker that had taken it: Celery's broker may hold it for an hour).
            handover.request_drain(visit)
    keep_polling()
    usage_rollup.catch_up(batches=1)  # usage rows logged past the app (docs/performance.md)
    tally.catch_up(batches=1)  # jobs finished since the last sweep, into AIJobDaily


def describe(visit: Context) -> str:
    """A visit for a log line: ``database 'default', schema 'acme'``."""
    where = f"database {visit['db']!r}"
    return f"{where}, schema {visit['schema']!r}" if visit.get("schema") else where


def recover_lost_jobs(now: datetime, report: SweepReport) -> list[int]:
    """Running jobs older than JOB_TIMEOUT lost their worker: supersede them (a newer
    job for the row and field exists), fail them, or return their ids (now pending)
    to be enqueued again."""
    requeue: list[int] = []
    deadline = now - timedelta(seconds=get_setting("JOB_TIMEOUT"))
    lost = AIJob.objects.filter(status=Status.RUNNING, started_at__lt=deadline)
    for job in lost.only(*recovery.LOST_JOB_COLUMNS)[:JOBS_PER_SWEEP]:
        guarded = AIJob.objects.filter(pk=job.pk, status=Status.RUNNING, run_token=job.run_token)
        outcome = recover_lost(
            job,
            guarded,
            exhausted=job.attempts >= get_setting("MAX_ATTEMPTS"),
            error_code=ErrorCode.TIMEOUT,
            error="The worker running this job was lost and no attempts are left.",
            now=now,
            newer=recovery.newer_jobs(job),
        )
        if outcome == Status.FAILED:
            report.failed += 1
        elif outcome == Status.PENDING:
            report.recovered += 1
            requeue.append(job.pk)
            logger.warning("AI job %s: worker lost, job requeued", job.pk)
    return requeue


def orphaned_queued_jobs(now: datetime) -> list[int]:
    """Queued jobs whose RQ job is not waiting to run: gone from Redis (flushed, or
    enqueue half-failed), or taken by a worker that died before leasing it (RQ says
    "started", or it sits in RQ's intermediate queue; a live worker leases within
    milliseconds, and a duplicate run would find the job leased and skip it)."""
    grace = now - timedelta(seconds=get_setting("PENDING_GRACE"))
    candidates = list(
        AIJob.objects.filter(status=Status.QUEUED, updated_at__lt=grace)
        .exclude(rq_job_id="")
        .exclude(phase=Phase.BATCH)  # waits for a provider batch, not for RQ
        .values_list("pk", "rq_job_id")[:JOBS_PER_SWEEP]
    )
    if not candidates:
        return []
    try:
        waiting = backend.waiting_tasks([task_id for _pk, task_id in candidates])
    except Exception as exc:
        logger.warning("Sweep could not reach Redis: %s", exc)
        return []
    orphans = [pk for pk, task_id in candidates if task_id not in waiting]
    if orphans:
        transitions.not_handed_over(orphans, "the queue no longer holds their task")
    return orphans


def schedule_sweep() -> None:
    """Make sure one periodic sweep is scheduled (one Redis SET NX when it is).

    When the scheduled sweep is a whole interval late, RQ's scheduler is not
    running (a SIGKILLed worker holds its lock for about a minute): run one sweep
    now instead, at most once per interval. Either goes to the front of the queue:
    behind a backlog the sweep would come only once the backlog is done."""
    interval = int(get_setting("SWEEP_INTERVAL"))
    if interval <= 0:
        return
    try:
        if backend.schedule_once(SCHEDULED_KEY, interval, PERIODIC_SWEEP, at_front=True):
            store().set(DUE_KEY, repr(time.time() + interval), interval * 10)
        elif _late(interval) and backend.set_mark(KICKED_KEY, "1", interval):
            backend.send(PERIODIC_SWEEP, result_ttl=interval, at_front=True)
    except Exception as exc:
        logger.debug("Could not schedule the AI fields sweep: %s", exc)


def _late(interval: int) -> bool:
    due = store().get(DUE_KEY)
    return due is not None and time.time() > float(due) + interval
