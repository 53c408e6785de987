"""A drain that has emptied the queue lingers (``DRAIN_LINGER``): a commit meanwhile
hands its job to it and wakes it through Redis, with no new RQ job; it exits after
the linger, or at once when other tasks wait for the worker. A burst worker's drains
do not linger: the worker exits once the queue is empty."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import openai  # noqa: F401  (imported now: no call waits for the SDK's import)
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rq.registry import FinishedJobRegistry
from rq.timeouts import TimerDeathPenalty

from django_ai_fields.dispatch import handover
from django_ai_fields.dispatch.handover import DRAIN_PREFIX, LISTENING, WAITING_DRAIN_KEY
from django_ai_fields.jobs import sweep
from django_ai_fields.jobs.drains import BEHIND_SECONDS
from django_ai_fields.models import AIJob, Status
from django_ai_fields.queues import get_queue
from django_ai_fields.rq_worker import SimpleWorker
from tests.fake_provider import default_responder
from tests.jobs.test_drains import drain_ids, save_articles, statuses, use_ai

pytestmark = pytest.mark.django_db(transaction=True)


class ThreadWorker(SimpleWorker):
    """An in-process worker off the main thread: no signal handlers, timer timeouts."""

    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self) -> None:
        pass


# A long-running worker (not --burst, whose drains do not linger) that exits after
# this many idle seconds, so that a test can wait for it.
IDLE_SECONDS = 1


def worker_in_thread(burst: bool = False) -> threading.Thread:
    def work() -> None:
        queue = get_queue()
        worker = ThreadWorker([queue], connection=queue.connection)
        try:
            worker.work(burst=burst, max_idle_time=None if burst else IDLE_SECONDS)
        finally:
            connection.close()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def mark() -> str | None:
    value = get_queue().connection.get(WAITING_DRAIN_KEY)
    return None if value is None else value.decode()


def eventually(condition: Callable[[], bool], what: str, seconds: float = 120) -> None:
    """Wait for a state (a loaded machine may be slow to reach it): never a timing."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.01)


def finished_drains() -> list[str]:
    registry = FinishedJobRegistry(queue=get_queue())
    return [i for i in registry.get_job_ids() if i.startswith(DRAIN_PREFIX)]


def test_a_lingering_drain_takes_a_job_committed_while_it_waits_without_a_new_rq_job(
    fake_provider, settings
):
    use_ai(settings, DRAIN_LINGER=120)
    save_articles(1, "First")
    with CaptureQueriesContext(connection) as queued_drain_save:  # joins the queued drain
        [first] = save_articles(1, "First")
    [drain_id] = drain_ids()
    worker = worker_in_thread()
    eventually(lambda: statuses([first]) == [Status.SUCCEEDED], "the first jobs done")
    eventually(lambda: mark() == drain_id + LISTENING, "the drain listening")

    with CaptureQueriesContext(connection) as second_save:
        [second] = save_articles(1, "Second")

    assert len(get_queue()) == 0  # no new drain: the lingering one was woken
    eventually(lambda: statuses([second]) == [Status.SUCCEEDED], "the second job done")
    assert AIJob.objects.get(pk=second.pk).rq_job_id == drain_id  # leased by that drain
    assert fake_provider.calls == 3
    # Handing a job to a listening drain costs the save no statement more.
    assert len(second_save.captured_queries) == len(queued_drain_save.captured_queries)
    get_queue().enqueue("tests.jobs.test_drain_linger.nothing")  # ends the linger
    worker.join(timeout=60)
    assert not worker.is_alive()
    assert finished_drains() == [drain_id]
    assert mark() is None


def nothing() -> None:
    """A task of another kind, for the worker after the drain."""


def test_a_drain_exits_after_its_linger_and_the_next_commit_requests_a_new_one(
    fake_provider, settings
):
    use_ai(settings, DRAIN_LINGER=0.3)
    [first] = save_articles(1, "First")
    [drain_id] = drain_ids()

    worker = worker_in_thread()  # the drain lingers, takes nothing, releases the mark
    eventually(lambda: finished_drains() == [drain_id], "the drain ended")
    worker.join(timeout=60)

    assert statuses([first]) == [Status.SUCCEEDED]
    assert mark() is None
    assert finished_drains() == [drain_id]
    [second] = save_articles(1, "Second")
    [next_drain] = drain_ids()
    assert next_drain != drain_id
    assert AIJob.objects.get(pk=second.pk).rq_job_id == next_drain


def test_a_burst_workers_drain_does_not_linger(fake_provider, settings):
    """A burst worker (a cron's ``rqworker --burst``) exits once the queue is empty:
    its drain does not wait out the linger before."""
    use_ai(settings, DRAIN_LINGER=600)
    [first] = save_articles(1, "First")
    [drain_id] = drain_ids()

    worker = worker_in_thread(burst=True)
    worker.join(timeout=60)  # far less than the linger

    assert not worker.is_alive()
    assert statuses([first]) == [Status.SUCCEEDED]
    assert finished_drains() == [drain_id]
    assert mark() is None
    [second] = save_articles(1, "Second")  # the next commit requests a new drain
    assert drain_ids() != [drain_id]
    assert AIJob.objects.get(pk=second.pk).rq_job_id != drain_id


def test_a_lingering_drain_makes_room_for_other_tasks(fake_provider, settings):
    """A backfill's chunk (or any task) queued while a drain lingers is not kept waiting
    for the linger: the drain exits and the worker takes it."""
    use_ai(settings, DRAIN_LINGER=600)
    [first] = save_articles(1, "First")
    [drain_id] = drain_ids()
    worker = worker_in_thread()
    eventually(lambda: mark() == drain_id + LISTENING, "the drain listening")

    get_queue().enqueue("tests.jobs.test_drain_linger.nothing")

    worker.join(timeout=60)  # far less than the linger
    assert not worker.is_alive()
    assert statuses([first]) == [Status.SUCCEEDED]
    assert mark() is None


def test_a_job_marked_for_a_listening_drain_is_taken_even_without_its_wake_up(
    fake_provider, settings
):
    """The wake-up is an optimisation: a commit that marked a job for the listening
    drain (and whose wake-up was lost) is taken by the drain's last look, after it
    released the mark at the end of its linger."""
    use_ai(settings, DRAIN_LINGER=0.5)
    [first] = save_articles(1, "First")
    [drain_id] = drain_ids()
    worker = worker_in_thread()
    eventually(lambda: mark() == drain_id + LISTENING, "the drain listening")

    # A commit's hand-over, without the wake-up.
    [second] = save_articles(1, "Second")  # woken: taken at once...
    eventually(lambda: statuses([second]) == [Status.SUCCEEDED], "the second job done")
    with handover_without_wakeups():
        [third] = save_articles(1, "Third")  # ... not woken: taken by the last look
    assert AIJob.objects.get(pk=third.pk).rq_job_id == drain_id
    worker.join(timeout=60)

    assert statuses([first, second, third]) == [Status.SUCCEEDED] * 3
    assert finished_drains() == [drain_id]
    assert len(get_queue()) == 0


class handover_without_wakeups:
    def __enter__(self) -> None:
        self.wake = handover.backend.wake
        handover.backend.wake = lambda key: None  # type: ignore[assignment]

    def __exit__(self, *exc: object) -> None:
        handover.backend.wake = self.wake  # type: ignore[assignment]


def test_the_sweep_leaves_a_listening_drains_mark(fake_provider, settings):
    use_ai(settings, DRAIN_LINGER=600)
    [first] = save_articles(1, "First")
    [drain_id] = drain_ids()
    worker = worker_in_thread()
    eventually(lambda: mark() == drain_id + LISTENING, "the drain listening")

    sweep.sweep()

    assert mark() == drain_id + LISTENING  # not taken for a drain lost from the queue
    get_queue().enqueue("tests.jobs.test_drain_linger.nothing")
    worker.join(timeout=60)
    assert statuses([first]) == [Status.SUCCEEDED]


def test_a_drain_does_not_linger_where_the_task_backend_cannot_wake_it(settings):
    from django_ai_fields.jobs import drains

    use_ai(settings, DRAIN_LINGER=5, TASK_BACKEND="celery")
    assert drains.linger_seconds() == 0.0
    use_ai(settings, DRAIN_LINGER=5, TASK_BACKEND="rq")
    assert drains.linger_seconds() == 5.0


def test_a_listening_drain_that_falls_behind_hands_the_next_commits_to_another_drain(
    fake_provider, settings
):
    """A drain whose one thread is too busy to take a woken job at once (here: a job
    handed over while the drain waits for a call, and woken only later) stops
    listening and requests a drain for another worker, so live traffic is not one
    work horse's alone."""
    from django_ai_fields.dispatch import backend
    from django_ai_fields.dispatch.handover import WAKE_KEY

    use_ai(settings, DRAIN_LINGER=120, CONCURRENCY=4)
    arrived, release = threading.Event(), threading.Event()

    def hold_the_first_call(request):  # type: ignore[no-untyped-def]
        if not arrived.is_set():
            arrived.set()
            release.wait(60)
        return default_responder(request)

    fake_provider.responder = hold_the_first_call
    [first] = save_articles(1, "First")
    [drain_id] = drain_ids()
    worker = worker_in_thread()
    eventually(arrived.is_set, "the first call in flight")
    assert mark() == drain_id + LISTENING
    with handover_without_wakeups():  # the drain waits for its call: it does not look
        [late] = save_articles(1, "Late")
    time.sleep(2 * BEHIND_SECONDS)

    backend.wake(WAKE_KEY.format(drain_id=drain_id))

    eventually(lambda: statuses([late]) == [Status.SUCCEEDED], "the late job done")
    # The next commits go to another drain, waiting in the queue or listening already.
    eventually(lambda: mark() not in (None, drain_id + LISTENING), "another drain requested")
    other = (mark() or "").removesuffix(LISTENING)
    assert other.startswith(DRAIN_PREFIX) and other != drain_id
    release.set()
    get_queue().enqueue("tests.jobs.test_drain_linger.nothing")  # ends the lingers
    worker.join(timeout=120)
    assert statuses([first, late]) == [Status.SUCCEEDED] * 2


def test_wake_ups_without_jobs_do_not_stretch_the_linger(fake_provider, settings):
    """Only a job taken starts the linger again: a stream of empty wake-ups (a mark
    lost and taken back, a Redis hiccup) leaves the drain ending on time."""
    from django_ai_fields.dispatch import backend
    from django_ai_fields.dispatch.handover import WAKE_KEY

    use_ai(settings, DRAIN_LINGER=1)
    [first] = save_articles(1, "First")
    [drain_id] = drain_ids()
    worker = worker_in_thread()
    eventually(lambda: statuses([first]) == [Status.SUCCEEDED], "the first job done")

    for _ in range(600):  # a minute of wake-ups, far more than the linger
        if not worker.is_alive():
            break
        backend.wake(WAKE_KEY.format(drain_id=drain_id))
        time.sleep(0.1)

    assert not worker.is_alive()  # it ended while still being woken
    assert finished_drains() == [drain_id]
    assert mark() is None
