"""Drains: the live path. Committed jobs reach RQ as one drain, which runs many of
them at once, refills from the database, and never shares a job with another drain."""

from __future__ import annotations

import io
import itertools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

# Imported now, so no test's first call waits for an SDK import.
import openai  # noqa: F401
import pytest
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from rq.registry import FinishedJobRegistry, ScheduledJobRegistry

from django_ai_fields.api import regenerate
from django_ai_fields.dispatch.handover import (
    DRAIN_PREFIX,
    WAITING_DRAIN_KEY,
    WAITING_MARK_SECONDS,
    waiting_drain,
)
from django_ai_fields.jobs import drains, sweep, tasks
from django_ai_fields.models import AIJob, AIUsage, Status
from django_ai_fields.queues import get_queue
from django_ai_fields.rq_worker import SimpleWorker
from tests.fake_provider import FakeProvider, RecordedRequest, default_responder
from tests.intake.test_outbox import REDIS_DOWN
from tests.testapp.models import Article

pytestmark = pytest.mark.django_db(transaction=True)


def use_ai(settings, **values) -> None:  # type: ignore[no-untyped-def]
    settings.AI_FIELDS = {**settings.AI_FIELDS, **values}


def save_articles(count: int, prefix: str = "Title") -> list[AIJob]:
    """``count`` saves, each its own commit: one live job each, handed to a drain."""
    rows = [Article.objects.create(title=f"{prefix} {n}") for n in range(count)]
    return list(AIJob.objects.filter(object_id__in=[str(row.pk) for row in rows]).order_by("pk"))


def run_queue() -> None:
    """One in-process RQ worker runs everything on the queue (drains, chunks)."""
    queue = get_queue()
    SimpleWorker([queue], connection=queue.connection).work(burst=True)


def drain_ids() -> list[str]:
    return [job_id for job_id in get_queue().job_ids if job_id.startswith(DRAIN_PREFIX)]


def statuses(jobs: list[AIJob]) -> list[str]:
    found = AIJob.objects.in_bulk([job.pk for job in jobs])
    return [found[job.pk].status for job in jobs]


def prompt_of(request: RecordedRequest) -> str:
    return str(request.body["messages"][-1]["content"])


def once(action: Callable[[], None]) -> Callable[[RecordedRequest], str]:
    """A responder that runs ``action`` (in the fake server's thread) during the
    first provider call, then answers as usual."""
    done = threading.Event()

    def respond(request: RecordedRequest) -> str:
        if not done.is_set():
            done.set()
            try:
                action()
            finally:
                connection.close()  # this server thread's own connection
        return default_responder(request)

    return respond


def first_calls_meet(count: int) -> Callable[[RecordedRequest], str]:
    """A responder holding each of the first ``count`` calls until all of them have
    arrived (then answering as usual): calls that really overlap pass at once,
    whatever the machine's load; calls made one after another time out and fail."""
    barrier = threading.Barrier(count, timeout=180)  # a loaded machine may be slow to start them
    seen = itertools.count()

    def respond(request: RecordedRequest) -> str:
        if next(seen) < count:
            barrier.wait()
        return default_responder(request)

    return respond


def test_a_burst_of_saves_enqueues_one_drain_that_runs_them_concurrently(fake_provider, settings):
    use_ai(settings, CONCURRENCY=8)
    fake_provider.responder = first_calls_meet(6)

    jobs = save_articles(6)

    assert len(get_queue()) == 1
    [drain_id] = drain_ids()
    assert {job.rq_job_id for job in jobs} == {drain_id}
    run_queue()
    assert statuses(jobs) == [Status.SUCCEEDED] * 6
    assert fake_provider.calls == 6
    assert fake_provider.max_in_flight == 6
    # One RQ job ran them all: the lease names the drain that ran each job.
    assert set(AIJob.objects.values_list("rq_job_id", flat=True)) == {drain_id}
    assert FinishedJobRegistry(queue=get_queue()).get_job_ids() == [drain_id]


def test_a_drain_refills_its_free_slots_until_none_is_left(fake_provider, settings):
    use_ai(settings, CONCURRENCY=2)
    fake_provider.responder = first_calls_meet(2)
    jobs = save_articles(6)
    [drain_id] = drain_ids()

    run_queue()

    assert statuses(jobs) == [Status.SUCCEEDED] * 6
    assert fake_provider.calls == 6
    assert fake_provider.max_in_flight == 2
    assert set(AIJob.objects.values_list("rq_job_id", flat=True)) == {drain_id}


def test_a_drain_with_more_waiting_than_it_can_take_requests_a_companion(fake_provider, settings):
    """A burst committed before any drain started must not be one work horse's alone:
    a drain whose free slots fill up, with jobs still waiting, asks for another."""
    use_ai(settings, CONCURRENCY=2)
    jobs = save_articles(6)
    get_queue().empty()  # the burst's drain, taken by "this worker":
    get_queue().connection.delete(WAITING_DRAIN_KEY)

    outcome = drains.drain()

    assert outcome == {Status.SUCCEEDED: 6}
    assert statuses(jobs) == [Status.SUCCEEDED] * 6
    assert len(drain_ids()) == 1  # the companion, for an idle worker to join in
    assert waiting_drain() == drain_ids()[0]


def test_the_waiting_mark_expires_within_seconds(settings):
    """A drain deleted from the queue (``rq empty``) holds back new drains only briefly."""
    save_articles(1)
    ttl = get_queue().connection.ttl(WAITING_DRAIN_KEY)
    assert 0 < ttl <= WAITING_MARK_SECONDS <= 10


def run_drain_in_thread() -> dict[str, int]:
    try:
        return tasks.run_drain()
    finally:
        connection.close()


def test_two_drains_at_once_never_run_the_same_job_twice(fake_provider, settings):
    use_ai(settings, CONCURRENCY=3)
    fake_provider.delay = 0.05
    jobs = save_articles(12)
    get_queue().empty()

    with ThreadPoolExecutor(2) as pool:
        outcomes = [run.result() for run in [pool.submit(run_drain_in_thread) for _ in range(2)]]

    assert sum(outcome.get(Status.SUCCEEDED, 0) for outcome in outcomes) == 12
    assert statuses(jobs) == [Status.SUCCEEDED] * 12
    assert fake_provider.calls == 12
    usages = AIUsage.objects.values_list("job_id", flat=True)
    assert sorted(usages) == sorted(job.pk for job in jobs)  # one usage row per job


def test_the_lease_skips_rows_another_drain_locked(settings):
    save_articles(2)

    with CaptureQueriesContext(connection) as queries:
        leased = drains.lease_waiting(1)

    assert len(leased) == 1 and leased[0].status == Status.RUNNING
    skip_locked = [q["sql"] for q in queries.captured_queries if "SKIP LOCKED" in q["sql"]]
    if connection.vendor == "postgresql":  # one UPDATE ... RETURNING, no transaction
        assert [q["sql"] for q in queries.captured_queries] == skip_locked
        assert len(skip_locked) == 1 and "RETURNING" in skip_locked[0]
    elif connection.features.has_select_for_update_skip_locked:  # MariaDB
        assert len(skip_locked) == 1
    else:  # SQLite: the lease's conditional UPDATE arbitrates
        assert skip_locked == []


def test_a_leased_job_is_read_as_the_orm_reads_it(settings):
    [saved] = save_articles(1)
    expected = AIJob.objects.get(pk=saved.pk)

    [leased] = drains.lease_waiting(4)

    fresh = AIJob.objects.select_related("content_type").get(pk=leased.pk)
    for field in AIJob._meta.concrete_fields:
        assert getattr(leased, field.attname) == getattr(fresh, field.attname), field.name
    assert leased.attempts == expected.attempts + 1 and leased.run_token
    assert isinstance(leased.steps, list) and leased.created_at.tzinfo is not None
    with CaptureQueriesContext(connection) as queries:
        assert leased.content_type == fresh.content_type
        assert leased.target_label
    assert queries.captured_queries == []


def test_a_job_waiting_for_a_delayed_retry_is_not_a_drains(fake_provider, settings):
    use_ai(settings, RETRY_BACKOFF=1000, RETRY_BACKOFF_MAX=1000)
    fake_provider.enqueue_fault(status=500)
    [retried] = save_articles(1, "Retried")
    run_queue()
    retried.refresh_from_db()
    assert (retried.status, retried.attempts) == (Status.QUEUED, 1)
    scheduled_id = retried.rq_job_id
    assert not scheduled_id.startswith(DRAIN_PREFIX)
    assert scheduled_id in ScheduledJobRegistry(queue=get_queue()).get_job_ids()

    [live] = save_articles(1, "Live")
    run_queue()

    retried.refresh_from_db()
    assert (retried.status, retried.attempts, retried.rq_job_id) == (
        Status.QUEUED,
        1,
        scheduled_id,
    )
    assert statuses([live]) == [Status.SUCCEEDED]
    assert fake_provider.calls == 2  # the failed call and the live job's; no early retry


def test_a_running_backfill_chunk_takes_a_live_save_before_its_own_jobs(
    fake_provider: FakeProvider, settings
):
    use_ai(settings, CONCURRENCY=1, CHUNK_SIZE=3)
    fake_provider.delay = 0.1
    Article.objects.bulk_create(Article(title=f"Backfill {n}") for n in range(3))
    AIJob.objects.all().delete()
    backfill = regenerate(Article.objects.all(), "blurb")
    [chunk_id] = get_queue().job_ids
    fake_provider.responder = once(lambda: Article.objects.create(title="Live save"))

    run_queue()

    prompts = [prompt_of(request) for request in fake_provider.provider_requests]
    assert len(prompts) == 4
    assert "Live save" in prompts[1]  # the 2nd call, not the 4th
    live = AIJob.objects.exclude(pk__in=[job.pk for job in backfill]).get()
    assert (live.status, live.rq_job_id) == (Status.SUCCEEDED, chunk_id)  # the chunk ran it
    assert statuses(backfill) == [Status.SUCCEEDED] * 3


def test_redis_down_at_commit_keeps_jobs_pending_until_requeue_hands_them_to_a_drain(
    fake_provider, settings
):
    with override_settings(RQ_QUEUES=REDIS_DOWN):
        jobs = save_articles(3)
    assert statuses(jobs) == [Status.PENDING] * 3
    assert len(get_queue()) == 0

    call_command("ai_requeue", stdout=io.StringIO())

    [drain_id] = drain_ids()
    assert len(get_queue()) == 1
    assert set(AIJob.objects.values_list("rq_job_id", flat=True)) == {drain_id}
    run_queue()
    assert statuses(jobs) == [Status.SUCCEEDED] * 3
    assert fake_provider.calls == 3


def test_saves_while_a_drain_waits_join_it_and_a_started_drain_lets_the_next_commit_request_one(
    fake_provider, settings
):
    first = save_articles(3, "First")
    [drain_id] = drain_ids()
    second = save_articles(3, "Second")
    assert get_queue().job_ids == [drain_id]  # no second drain for the second burst
    assert {job.rq_job_id for job in first + second} == {drain_id}
    seen: dict[str, object] = {}

    def save_during_the_drain() -> None:
        seen["mark"] = waiting_drain()  # released when the drain started
        [job] = save_articles(1, "During")
        seen["job"] = job

    fake_provider.responder = once(save_during_the_drain)
    run_queue()

    assert seen["mark"] is None
    during = seen["job"]
    assert isinstance(during, AIJob)
    assert during.rq_job_id.startswith(DRAIN_PREFIX) and during.rq_job_id != drain_id
    assert statuses([*first, *second, during]) == [Status.SUCCEEDED] * 7
    assert fake_provider.calls == 7


def test_the_sweep_forgets_a_waiting_drain_that_vanished(fake_provider, settings):
    [orphan] = save_articles(1, "Orphan")
    lost_id = waiting_drain()
    assert lost_id is not None
    get_queue().empty()  # the drain is gone (a flushed queue, a worker died taking it)

    sweep.sweep()
    [live] = save_articles(1, "Live")

    assert waiting_drain() != lost_id
    assert drain_ids() == [waiting_drain()]
    run_queue()
    assert statuses([orphan, live]) == [Status.SUCCEEDED] * 2


def queries_for_a_drain_of(count: int) -> int:
    AIJob.objects.all().delete()
    jobs = save_articles(count)
    get_queue().empty()
    with CaptureQueriesContext(connection) as queries:
        outcome = drains.drain()
    assert outcome == {Status.SUCCEEDED: count}
    assert statuses(jobs) == [Status.SUCCEEDED] * count
    return len(queries.captured_queries)


def test_queries_per_job_in_a_drain_stay_constant(fake_provider, settings):
    use_ai(settings, CONCURRENCY=5)

    ten, twenty = queries_for_a_drain_of(10), queries_for_a_drain_of(20)

    assert abs(twenty / 20 - ten / 10) <= 1, (ten, twenty)


def test_a_drain_loads_the_rows_of_each_batch_it_leases_in_one_query(fake_provider, settings):
    use_ai(settings, CONCURRENCY=5)
    fake_provider.delay = 0.1
    save_articles(10)
    get_queue().empty()

    with CaptureQueriesContext(connection) as queries:
        drains.drain()

    sql = [q["sql"].replace("`", '"') for q in queries.captured_queries]  # MariaDB's quotes
    leases = [s for s in sql if s.startswith('UPDATE "django_ai_fields_aijob" SET "status"')]
    leases = [s for s in leases if "'running'" in s]
    row_loads = [s for s in sql if s.startswith("SELECT") and 'FROM "testapp_article"' in s]
    assert 2 <= len(leases) < 10  # batches: the first took 5 jobs at once
    # Not one SELECT per job: one per lease that took jobs (on PostgreSQL a look that
    # finds nothing is an UPDATE of no row too, and loads nothing).
    assert 2 <= len(row_loads) <= len(leases)


def test_a_job_put_back_for_a_delayed_retry_between_the_select_and_the_lease_is_left(
    monkeypatch,
):
    """On SQLite the lease is a SELECT, then a conditional UPDATE: another drain may run
    the job and put it back for a delayed retry in between. The UPDATE leaves it."""
    if connection.vendor == "postgresql":
        pytest.skip("PostgreSQL leases in one statement: nothing runs in between")
    [job] = save_articles(1)
    real_lease = drains.lease_still_waiting

    def retried_meanwhile(ids):  # type: ignore[no-untyped-def]
        AIJob.objects.filter(pk=job.pk).update(rq_job_id="a-scheduled-rq-job", attempts=1)
        return real_lease(ids)

    monkeypatch.setattr(drains, "lease_still_waiting", retried_meanwhile)

    assert drains.lease_waiting(4) == []
    job.refresh_from_db()
    assert (job.status, job.rq_job_id, job.run_token) == (Status.QUEUED, "a-scheduled-rq-job", "")
