"""django_ai_fields.rq_worker.Worker: RQ's forking worker, stopping at once (a plain
``rq.Worker`` with redis-py 8.2 waits 60 s in about every second stop), and the
system check that names it (W025)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from rq import Worker as PlainWorker

from django_ai_fields.queues import get_queue
from django_ai_fields.rq_worker import Worker, stops_slowly
from tests.fresh_project import FreshProject

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
