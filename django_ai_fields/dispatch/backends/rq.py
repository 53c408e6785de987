"""RQ, through django-rq: the default backend (``rqworker default --with-scheduler``).

Delays go to RQ's scheduler; live work is enqueued at the front. RQ answers for
itself which tasks still wait (queued, scheduled, deferred, and not in a dead
worker's intermediate queue) and which died (its failed registry)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from ... import queues
from ...rq_worker import working_in_burst
from .base import Wakeup

# RQ statuses of a task that will still run; any other (or none: gone) never will.
WAITING_STATES = frozenset({"queued", "scheduled", "deferred"})


# Seconds a wake-up waits for its drain to block on it (it expires unread after).
WAKE_SECONDS = 10


class RQBackend:
    name = "rq"

    @property
    def can_wake(self) -> bool:
        # A burst worker exits once the queue is empty: its drains do not linger.
        return not working_in_burst()

    def send(self, wakeup: Wakeup) -> str:
        queue = queues.get_queue()
        options: dict[str, Any] = {
            "job_id": wakeup.task_id,
            "job_timeout": wakeup.timeout,
            "at_front": wakeup.at_front,
            "args": wakeup.args,
            "kwargs": wakeup.kwargs,
        }
        if wakeup.result_ttl is not None:
            options["result_ttl"] = wakeup.result_ttl
        if wakeup.delay > 0:  # at_front then applies when the scheduler moves it onto the queue
            delay = timedelta(seconds=wakeup.delay)
            return str(queue.enqueue_in(delay, wakeup.task, **options).id)
        return str(queue.enqueue(wakeup.task, **options).id)

    def current_task_id(self) -> str | None:
        from rq import get_current_job

        rq_job = get_current_job()
        return None if rq_job is None else str(rq_job.id)

    def waiting_tasks(self, task_ids: Sequence[str]) -> set[str]:
        from rq.job import Job

        queue = queues.get_queue()
        connection = queue.connection
        key = getattr(queue, "intermediate_queue_key", None)  # rq >= 2
        taken = {_text(i) for i in connection.lrange(key, 0, -1)} if key else set()
        pipe = connection.pipeline()
        for task_id in task_ids:
            pipe.hget(Job.key_for(task_id), "status")
        states = pipe.execute()
        return {
            task_id
            for task_id, state in zip(task_ids, states, strict=True)
            if _text(state) in WAITING_STATES and task_id not in taken
        }

    def recently_failed(self, limit: int) -> list[str]:
        registry = queues.get_queue().failed_job_registry
        return [_text(i) for i in registry.connection.zrevrange(registry.key, 0, limit - 1)]

    def wake(self, key: str) -> None:
        pipe = queues.get_queue().connection.pipeline(transaction=False)
        pipe.rpush(key, "1")
        pipe.expire(key, WAKE_SECONDS)
        pipe.execute()

    def wait_for_wake(self, key: str, seconds: float) -> bool:
        connection = queues.get_queue().connection
        if connection.blpop([key], timeout=max(0.01, seconds)) is None:
            return False
        connection.delete(key)  # the wake-ups sent meanwhile: one look takes their jobs
        return True

    def others_waiting(self) -> bool:
        return bool(queues.get_queue().count)

    def health(self) -> dict[str, Any]:
        from rq import Worker

        queue = queues.get_queue()
        return {
            "name": queue.name,
            "waiting": queue.count,
            "depth": queue.count,
            "scheduled": queue.scheduled_job_registry.count,
            "started": queue.started_job_registry.count,
            "failed": queue.failed_job_registry.count,
            "workers": [_worker_info(w) for w in Worker.all(queue=queue)],
        }


def _worker_info(worker: Any) -> dict[str, Any]:
    return {
        "name": worker.name,
        "state": worker.get_state(),
        "queues": worker.queue_names(),
        "current_job": worker.get_current_job_id(),
        "hostname": worker.hostname,
        "pid": worker.pid,
        "birth": _iso(worker.birth_date),
        "last_heartbeat": _iso(worker.last_heartbeat),
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if value else None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
