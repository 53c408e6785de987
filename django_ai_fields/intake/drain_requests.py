"""What reaches RQ when live jobs are committed: a request for a drain.

A save's jobs become ``queued`` for any drain (their ``rq_job_id`` names the drain
waiting in the queue, a ``DRAIN_PREFIX`` id), and one drain RQ job
(``tasks.run_drain``, jobs/drains.py) is enqueued unless one is waiting already: a
burst of saves enqueues one drain, not one RQ job per AI job. A Redis key names the
waiting drain; the drain releases it when it starts, before it first looks for
jobs, so the next commit requests the next drain while this one works.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence

from django.utils import timezone
from rq import get_current_job
from rq.job import Job

from .. import queues
from ..conf import get_setting
from ..models import OPEN_STATUSES, AIJob, Phase, Status

logger = logging.getLogger("django_ai_fields")

# RQ job ids of drains start with this: a job queued with such an id waits for
# whichever drain comes first. (A job put back for a delayed run has its own RQ
# job, or none yet: the lifecycle clears the id, so no drain takes it early.)
DRAIN_PREFIX = "ai-fields-drain-"
# Redis key naming the drain that is queued and not yet started (at most one).
WAITING_DRAIN_KEY = "django_ai_fields:drain:waiting"
# Seconds the mark lives: a drain still waiting then (every worker busy) gets a
# companion on the next commit; a drain deleted from the queue (``rq empty``, a
# flushed Redis) holds back new drains no longer than this.
WAITING_MARK_SECONDS = 5
# Deletes the key only if it still names this drain.
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end"


def hand_to_drain(job_ids: Sequence[int]) -> int:
    """Queue these open jobs for a drain, and make sure one is coming; on a Redis
    failure leave them pending for the sweep. Returns how many were handed over.

    If the waiting drain's mark is gone once the jobs are marked, that drain has
    started and may have looked for jobs already, so another is requested."""
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
    value = queues.redis().get(WAITING_DRAIN_KEY)
    return value.decode() if isinstance(value, bytes) else value


def request_drain() -> str:
    """Enqueue a drain unless one is waiting in the queue already; return the
    waiting one's RQ id (raises on Redis errors)."""
    queue = queues.get_queue()
    drain_id = f"{DRAIN_PREFIX}{uuid.uuid4().hex}"
    if not queue.connection.set(WAITING_DRAIN_KEY, drain_id, nx=True, ex=WAITING_MARK_SECONDS):
        return waiting_drain() or request_drain()
    try:
        queue.enqueue(
            queues.RUN_DRAIN,
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


def release_waiting_mark() -> None:
    """Called by a drain as it starts: from now on a commit requests the next one."""
    rq_job = get_current_job()
    try:
        redis = queues.redis()
        if rq_job is None:
            redis.delete(WAITING_DRAIN_KEY)
        else:
            redis.eval(_RELEASE, 1, WAITING_DRAIN_KEY, rq_job.id)
    except Exception as exc:
        logger.debug("Could not release the waiting-drain mark: %s", exc)


def forget_lost_waiting_drain() -> None:
    """The sweep's part: drop the mark when its drain is no longer waiting in the
    queue (a worker died between taking it and starting it), so the next commit
    requests a new drain instead of counting on that one until the mark expires."""
    queue = queues.get_queue()
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
