"""django_ai_fields.rq_worker.Worker: RQ's forking worker, stopping at once (a plain
``rq.Worker`` with redis-py 8.2 may wait 60 s in a stop) and taking over a killed
worker's scheduler, and the system check that names it (W025)."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from rq import Worker as PlainWorker

from django_ai_fields.queues import get_queue
from django_ai_fields.rq_worker import SCHEDULER_CHECK_SECONDS, Worker, stops_slowly
from tests.conftest import REAL_REDIS
from tests.conftest import Worker as WorkerProcesses
from tests.fresh_project import FreshProject
from tests.jobs.test_drain_linger import eventually

STOP_SECONDS = 5  # a stop slower than this waited for the listener thread


def stop_after_losing_the_race(worker_class: type[PlainWorker]) -> float | None:
    """Seconds ``unsubscribe()`` takes when the listener thread has already read the
    UNSUBSCRIBE reply and waits again (the order that costs a plain rq.Worker 60 s);
    None when it had not returned after STOP_SECONDS."""
    queue = get_queue()
    worker = worker_class([queue], connection=queue.connection)
    worker.subscribe()
    time.sleep(0.2)  # the thread waits for commands
    worker.pubsub.unsubscribe()
    time.sleep(0.2)  # ... has read the reply, and waits again
    started = time.monotonic()
    stopping = threading.Thread(target=worker.unsubscribe, daemon=True)
    stopping.start()
    stopping.join(STOP_SECONDS)
    return None if stopping.is_alive() else time.monotonic() - started


@pytest.mark.skipif(not stops_slowly(PlainWorker), reason="this redis-py's stop() does not wait")
def test_a_plain_rq_worker_waits_for_its_listener_thread() -> None:
    """The flaw itself, so the test below shows the fix, not a quiet Redis."""
    assert stop_after_losing_the_race(PlainWorker) is None


def test_the_worker_stops_at_once_whatever_its_listener_thread_does() -> None:
    seconds = stop_after_losing_the_race(Worker)
    assert seconds is not None and seconds < 2, seconds


def test_the_check_names_the_worker_class_that_waits(tmp_path: Path) -> None:
    plain = FreshProject(tmp_path / "plain", extra_settings={"RQ": {}}).manage("check")
    ours = FreshProject(tmp_path / "ours").manage("check")
    if stops_slowly(PlainWorker):
        assert "django_ai_fields.W025" in plain.stderr + plain.stdout
        assert "rq.worker.worker_classes.Worker" in plain.stderr + plain.stdout
    assert "W025" not in ours.stderr + ours.stdout
    assert "System check identified no issues" in ours.stdout, ours.stderr


@pytest.mark.skipif(not REAL_REDIS, reason="rqworker processes need a real Redis (REDIS_URL)")
def test_a_worker_takes_over_the_scheduler_of_a_killed_one() -> None:
    """Two ``rqworker --with-scheduler``; the one holding the scheduler is SIGKILLed
    (with its scheduler process). A delayed task then still runs within its lock's 61 s
    and a check: a plain rq.Worker looks again only in its maintenance, 10 minutes on."""
    from rq import Worker as Registered

    queue = get_queue()
    lock = f"rq:scheduler-lock:{queue.name}"
    workers = WorkerProcesses()
    holder = workers.start("--with-scheduler")
    try:
        eventually(lambda: bool(queue.connection.exists(lock)), "the scheduler's lock", 60)
        other = workers.start("--with-scheduler")
        try:
            eventually(lambda: len(Registered.all(queue=queue)) == 2, "the second worker", 60)
            os.killpg(holder.pid, signal.SIGKILL)
            killed_at = time.monotonic()
            task = queue.enqueue_in(timedelta(seconds=1), "os.getpid")
            eventually(lambda: task.get_status(refresh=True) == "finished", "the task", 150)
            assert time.monotonic() - killed_at < 61 + 2 * SCHEDULER_CHECK_SECONDS + 10
        finally:
            os.killpg(other.pid, signal.SIGTERM)
            other.wait(timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
