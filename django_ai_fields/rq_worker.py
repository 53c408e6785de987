"""``Worker``: RQ's forking worker, stopping at once (``SimpleWorker`` likewise).

    RQ = {"WORKER_CLASS": "django_ai_fields.rq_worker.Worker"}

With rq 3.0 and redis-py 8.2 (the newest of both), a stop of a plain ``rq.Worker``
(a burst worker done, a warm shutdown on deploy) may wait 60 s for nothing: the
busier the machine, the more often. RQ's listener thread for commands blocks 60 s at
a time on its pub/sub connection; to stop, RQ sends ``UNSUBSCRIBE`` and then stops
the thread, and since redis-py 8.2 stopping waits for the thread to end. When the
thread reads the ``UNSUBSCRIBE`` reply before the stop flag is set, it blocks for
another 60 s and the worker with it (rq#1613; measured in docs/performance.md). This worker sets the
flag first, so the reply ends the thread.

It also takes over RQ's scheduler sooner. Started ``--with-scheduler``, one worker
holds the scheduler's lock; when that worker is killed (an OOM kill, a container
stopped without grace), the lock expires after 61 s, and RQ's other workers look
for it only in their maintenance, every 10 minutes: meanwhile delayed retries and the
periodic sweep wait. This worker looks every ``SCHEDULER_CHECK_SECONDS`` while idle.

A burst worker (``rqworker --burst``, a cron's) exits once the queue is empty, so its
drains do not linger (``DRAIN_LINGER``): lingering would only delay its exit.

Nothing else differs: jobs still run in a forked work horse, as ``rqworker`` runs
them by default.
"""

from __future__ import annotations

import inspect
import time
from typing import Any

from rq import SimpleWorker as RQSimpleWorker
from rq import Worker as RQWorker
from rq.worker import BaseWorker

# How long a stopping worker waits for its listener thread (RQ's own figure).
LISTENER_JOIN_SECONDS = 1
# How often an idle worker started --with-scheduler looks whether the scheduler's
# lock is free (RQ: every 10 minutes); one Redis SET NX each time.
SCHEDULER_CHECK_SECONDS = 15

# Whether this process works for a burst worker (a forked work horse inherits it).
_working_in_burst = False


def working_in_burst() -> bool:
    """Whether this process runs jobs for a burst worker of the classes below: one
    that exits once the queue is empty (its drains then have no reason to linger)."""
    return _working_in_burst


class RQFixes(BaseWorker):
    """What both worker classes below change in RQ's: the stop, the scheduler."""

    takes_over_scheduler = False
    scheduler_checked_at = 0.0

    def work(self, burst: bool = False, *args: Any, **kwargs: Any) -> bool:
        global _working_in_burst
        self.takes_over_scheduler = not burst  # a burst worker runs no scheduler
        before, _working_in_burst = _working_in_burst, burst
        try:
            return bool(super().work(burst, *args, **kwargs))
        finally:
            _working_in_burst = before

    @property
    def dequeue_timeout(self) -> int:
        # An idle worker wakes this often from its blocking dequeue, to look.
        return min(super().dequeue_timeout, SCHEDULER_CHECK_SECONDS)

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        super().heartbeat(timeout, pipeline)
        if pipeline is None and not self._is_horse:
            self.take_over_scheduler()

    def take_over_scheduler(self) -> None:
        """Start the scheduler here if its lock is free (what RQ's maintenance does)."""
        scheduler = self.scheduler
        if scheduler is None or not self.takes_over_scheduler:
            return
        if time.monotonic() - self.scheduler_checked_at < SCHEDULER_CHECK_SECONDS:
            return
        self.scheduler_checked_at = time.monotonic()
        process = scheduler._process  # as RQ's own maintenance reads it
        if process is None or not process.is_alive():
            scheduler.acquire_locks(auto_start=True)

    def unsubscribe(self) -> None:
        thread = self.pubsub_thread
        if not thread:
            return
        self.log.info("Worker %s: unsubscribing from %s", self.name, self.pubsub_channel_name)
        stop_without_waiting(thread)
        if thread.is_alive():
            self.pubsub.unsubscribe()  # the reply wakes the thread, which sees the flag
        thread.join(timeout=LISTENER_JOIN_SECONDS)
        self.pubsub.close()


class Worker(RQFixes, RQWorker):
    """RQ's forking worker (each job in a work horse), with the fixes above."""


class SimpleWorker(RQFixes, RQSimpleWorker):
    """RQ's SimpleWorker (jobs in the worker's own process), with the fixes above."""


def stop_waits_for_thread(stop: Any) -> bool:
    """Whether a redis-py ``PubSubWorkerThread.stop`` waits for its thread: since
    redis-py 8.2, which gave it a ``timeout`` (older versions accept none)."""
    return "timeout" in inspect.signature(stop).parameters


def stop_without_waiting(thread: Any) -> None:
    """Set a redis-py ``PubSubWorkerThread``'s stop flag; return at once."""
    if stop_waits_for_thread(thread.stop):
        thread.stop(timeout=0)
    else:
        thread.stop()


def stops_slowly(worker_class: type) -> bool:
    """Whether ``worker_class`` may wait 60 s to stop: a plain ``rq.Worker`` (or a
    class of its own) where redis-py's ``stop()`` waits for the listener thread."""
    from redis.client import PubSubWorkerThread

    return stop_waits_for_thread(PubSubWorkerThread.stop) and not issubclass(
        worker_class, RQFixes
    )
