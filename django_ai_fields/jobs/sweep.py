"""The sweep: enqueue jobs that never reached Redis and jobs whose worker died.

Run by ``ai_requeue`` and periodically by the workers themselves through the
RQ scheduler (``rqworker --with-scheduler``; the entry point is tasks.periodic_sweep).
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from rq.job import Job

from .. import queues
from ..conf import get_setting
from ..intake.drain_requests import forget_lost_waiting_drain
from ..intake.outbox import enqueue_all
from ..models import AIJob, ErrorCode, Phase, Status
from ..money import usage_rollup
from ..queues import PERIODIC_SWEEP
from . import recovery
from .batches import keep_polling
from .lifecycle import recover_lost
from .schedules import schedule_once

logger = logging.getLogger("django_ai_fields")

# Holds the RQ job id of the scheduled periodic sweep.
SCHEDULED_KEY = "django_ai_fields:sweep-scheduled"
# When the scheduled sweep is due, and whether a late one was run directly.
DUE_KEY = "django_ai_fields:sweep-due"
KICKED_KEY = "django_ai_fields:sweep-kicked"
BATCH = 1000
# RQ job statuses of a job that will still run (others, or none: it never will).
WAITING_RQ_STATUSES = (b"queued", b"scheduled", b"deferred", "queued", "scheduled", "deferred")


@dataclass
class SweepReport:
    enqueued: int = 0
    recovered: int = 0
    failed: int = 0
    unreachable: int = 0

    def __str__(self) -> str:
        return (
            f"{self.enqueued} pending job(s) enqueued, {self.recovered} lost job(s) requeued, "
            f"{self.failed} lost job(s) failed, {self.unreachable} left pending (Redis unreachable)"
        )


def sweep(*, all_pending: bool = False, now: datetime | None = None) -> SweepReport:
    """Enqueue stale pending jobs, orphaned queued jobs, and recover lost running jobs.

    ``all_pending`` enqueues every pending job, not only those older than PENDING_GRACE.
    """
    now = now or timezone.now()
    report = SweepReport()
    job_ids = recover_lost_jobs(now, report)
    # Runs RQ itself saw die (killed work horse...): recovered now, not after JOB_TIMEOUT.
    dead_runs, failed = recovery.recover_failed_runs()
    job_ids += dead_runs
    report.recovered += len(dead_runs)
    report.failed += failed
    pending = AIJob.objects.filter(status=Status.PENDING)
    if not all_pending:
        pending = pending.filter(
            updated_at__lt=now - timedelta(seconds=get_setting("PENDING_GRACE"))
        )
    job_ids += pending.order_by("pk").values_list("pk", flat=True)[:BATCH]
    job_ids += orphaned_queued_jobs(now)
    job_ids = list(dict.fromkeys(job_ids))  # recovered jobs are pending now: listed twice
    with contextlib.suppress(Exception):  # Redis down: enqueue_all reports it
        forget_lost_waiting_drain()
    report.enqueued = enqueue_all(job_ids)
    report.unreachable = len(job_ids) - report.enqueued
    keep_polling()
    usage_rollup.catch_up(batches=1)  # usage rows logged past the app (docs/performance.md)
    return report


def recover_lost_jobs(now: datetime, report: SweepReport) -> list[int]:
    """Running jobs older than JOB_TIMEOUT lost their worker: fail them, or return
    their ids (now pending) to be enqueued again."""
    requeue: list[int] = []
    deadline = now - timedelta(seconds=get_setting("JOB_TIMEOUT"))
    lost = AIJob.objects.filter(status=Status.RUNNING, started_at__lt=deadline)
    for job in lost.only("pk", "run_token", "attempts", "reservations")[:BATCH]:
        guarded = AIJob.objects.filter(pk=job.pk, status=Status.RUNNING, run_token=job.run_token)
        outcome = recover_lost(
            job,
            guarded,
            exhausted=job.attempts >= get_setting("MAX_ATTEMPTS"),
            error_code=ErrorCode.TIMEOUT,
            error="The worker running this job was lost and no attempts are left.",
            now=now,
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
        .values_list("pk", "rq_job_id")[:BATCH]
    )
    if not candidates:
        return []
    try:
        queue = queues.get_queue()
        connection = queue.connection
        key = getattr(queue, "intermediate_queue_key", None)  # rq >= 2
        taken = {i.decode() for i in connection.lrange(key, 0, -1)} if key else set()
        pipe = connection.pipeline()
        for _pk, rq_id in candidates:
            pipe.hget(Job.key_for(rq_id), "status")
        statuses = pipe.execute()
    except Exception as exc:
        logger.warning("Sweep could not reach Redis: %s", exc)
        return []
    orphans = [
        pk
        for (pk, rq_id), status in zip(candidates, statuses, strict=True)
        if status not in WAITING_RQ_STATUSES or rq_id in taken
    ]
    AIJob.objects.filter(pk__in=orphans, status=Status.QUEUED).update(status=Status.PENDING)
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
        queue = queues.get_queue()
        connection = queue.connection
        if schedule_once(SCHEDULED_KEY, interval, PERIODIC_SWEEP, at_front=True):
            connection.set(DUE_KEY, repr(time.time() + interval), ex=interval * 10)
        elif _late(connection, interval) and connection.set(KICKED_KEY, 1, nx=True, ex=interval):
            queue.enqueue(PERIODIC_SWEEP, result_ttl=interval, at_front=True)
    except Exception as exc:
        logger.debug("Could not schedule the AI fields sweep: %s", exc)


def _late(connection: Any, interval: int) -> bool:
    due = connection.get(DUE_KEY)
    return due is not None and time.time() > float(due) + interval
