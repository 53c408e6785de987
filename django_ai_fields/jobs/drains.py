"""Drains: the live path's RQ jobs. One work horse runs many live AIJobs at once.

On commit, a save's jobs become ``queued`` for "any drain" and one ``run_drain``
RQ job is requested, unless one is already waiting in the queue: a burst of saves
enqueues one drain, not one RQ job per AI job. A drain leases waiting jobs from
the database in batches (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so drains on
several machines never take the same job), runs them through the chunk runner
(chunks.py: up to ``CONCURRENCY`` provider calls in flight), refills its free
slots from the jobs still waiting, and exits when none is left (or after
``DRAIN_SECONDS``, handing on to a fresh drain). Running chunks take waiting live
jobs first too, so a backfill never makes a live save wait for a free worker.

Every per-job guarantee is the engine's, unchanged: the run-token lease, the
stale-input guard, quotas, breaker, rate limits, retries (a job waiting for a
delayed retry is not a drain's to take) and the sweep, which re-requests drains
for jobs nobody took.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence

from django.db import close_old_connections, connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from ..conf import get_setting
from ..models import AIJob, Phase, Status

logger = logging.getLogger("django_ai_fields")

# RQ job ids of drains start with this: a job queued with such an id waits for
# whichever drain comes first. (A job put back for a delayed run has its own RQ
# job, or none yet: the engine clears the id, so no drain takes it early.)
DRAIN_PREFIX = "ai-fields-drain-"
# Redis key naming the drain that is queued and not yet started (at most one).
WAITING_DRAIN_KEY = "django_ai_fields:drain:waiting"
# Deletes the key only if it still names this drain.
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end"


def waiting_jobs() -> QuerySet[AIJob]:
    """Jobs handed to any drain (hand_to_drain). Not a drain's: pending jobs (the
    outbox's, enqueued on commit or by the sweep), jobs waiting for a delayed retry
    (their own RQ job), chunk jobs (their chunk runs them), jobs run in-process
    (``sync=True``) and jobs inside a provider batch."""
    return AIJob.objects.filter(
        status=Status.QUEUED, rq_job_id__startswith=DRAIN_PREFIX, run_token=""
    ).exclude(phase=Phase.BATCH)


def lease_waiting(room: int) -> list[AIJob]:
    """Lease up to ``room`` waiting jobs, oldest first."""
    from .engine import lease_many

    while True:
        candidates = waiting_jobs().order_by("pk")
        if connection.features.has_select_for_update_skip_locked:
            with transaction.atomic():
                ids = list(
                    candidates.select_for_update(skip_locked=True).values_list("pk", flat=True)[
                        :room
                    ]
                )
                return lease_many(ids) if ids else []
        ids = list(candidates.values_list("pk", flat=True)[:room])
        if not ids:
            return []
        leased = lease_many(ids)
        if leased:
            return leased
        # Another drain leased these between our SELECT and UPDATE: look again.


def hand_to_drain(job_ids: Sequence[int]) -> int:
    """Queue these open jobs for a drain, and make sure one is coming; on a Redis
    failure leave them pending for the sweep. Returns how many were handed over.

    The jobs name the waiting drain (or a new one) but any drain may take them.
    A waiting drain releases its mark when it starts, before it first looks for
    jobs: if the mark is gone after the jobs were marked, that drain may have
    looked already, so another is requested."""
    from ..models import OPEN_STATUSES

    try:
        drain_id = waiting_drain() or request_drain()
        handed = AIJob.objects.filter(pk__in=job_ids, status__in=OPEN_STATUSES).exclude(
            phase=Phase.BATCH
        )
        handed.update(status=Status.QUEUED, enqueued_at=timezone.now(), rq_job_id=drain_id)
        if waiting_drain() != drain_id:
            request_drain()
    except Exception as exc:  # Redis down, misconfigured queue...: never lose the jobs
        logger.warning("%s AI job(s) stay pending: enqueue failed (%s)", len(job_ids), exc)
        AIJob.objects.filter(pk__in=job_ids, status=Status.QUEUED).update(status=Status.PENDING)
        return 0
    return len(job_ids)


def waiting_drain() -> str | None:
    """The RQ id of the drain waiting in the queue (not started yet), if any."""
    from ..intake.outbox import get_queue

    value = get_queue().connection.get(WAITING_DRAIN_KEY)
    return value.decode() if isinstance(value, bytes) else value


def request_drain() -> str:
    """Enqueue a drain unless one is waiting in the queue already; return the
    waiting one's RQ id (raises on Redis errors)."""
    from ..intake.outbox import get_queue

    queue = get_queue()
    drain_id = f"{DRAIN_PREFIX}{uuid.uuid4().hex}"
    grace = max(1, int(get_setting("PENDING_GRACE")))
    if not queue.connection.set(WAITING_DRAIN_KEY, drain_id, nx=True, ex=grace):
        return waiting_drain() or request_drain()
    try:
        queue.enqueue(
            "django_ai_fields.jobs.drains.run_drain",
            job_id=drain_id,
            job_timeout=drain_timeout(),
            result_ttl=600,
            at_front=True,  # ahead of backfill chunks: live saves first
        )
    except Exception:
        queue.connection.delete(WAITING_DRAIN_KEY)
        raise
    return drain_id


def drain_timeout() -> int:
    """RQ's timeout for a drain: it stops taking jobs after DRAIN_SECONDS, and each
    job it has started ends within JOB_TIMEOUT."""
    return int(get_setting("DRAIN_SECONDS")) + 2 * int(get_setting("JOB_TIMEOUT"))


def run_drain() -> dict[str, int]:
    """RQ entry point: run waiting live jobs until none is left."""
    from .chunks import ChunkRun
    from .sweep import schedule_sweep

    _release_waiting_mark()  # from now on a commit requests the next drain
    if not connection.in_atomic_block:
        close_old_connections()  # a long-lived worker may hold a dead connection
    try:
        run = ChunkRun([], source=lease_waiting, source_seconds=float(get_setting("DRAIN_SECONDS")))
        outcome = run.run()
        if run.source_stopped and waiting_jobs().exists():
            request_drain()  # its time is up: a fresh work horse goes on
        return outcome
    finally:
        schedule_sweep()


def forget_lost_waiting_drain() -> None:
    """The sweep's part: drop the waiting-drain mark when that drain is no longer
    waiting in the queue (a worker died between taking it and starting it), so the
    next commit requests a new one instead of counting on it until the mark expires."""
    from rq.job import Job

    from ..intake.outbox import get_queue

    queue = get_queue()
    redis = queue.connection
    drain_id = waiting_drain()
    if drain_id is None:
        return
    status = redis.hget(Job.key_for(drain_id), "status")
    status = status.decode() if isinstance(status, bytes) else status
    # RQ's intermediate queue holds jobs a worker took off the queue (rq >= 2).
    taken = getattr(queue, "intermediate_queue_key", None)
    if status not in ("queued", "scheduled", "deferred") or (
        taken and redis.lpos(taken, drain_id) is not None
    ):
        redis.eval(_RELEASE, 1, WAITING_DRAIN_KEY, drain_id)


def _release_waiting_mark() -> None:
    from rq import get_current_job

    from ..intake.outbox import get_queue

    rq_job = get_current_job()
    try:
        redis = get_queue().connection
        if rq_job is None:
            redis.delete(WAITING_DRAIN_KEY)
        else:
            redis.eval(_RELEASE, 1, WAITING_DRAIN_KEY, rq_job.id)
    except Exception as exc:
        logger.debug("Could not release the waiting-drain mark: %s", exc)
