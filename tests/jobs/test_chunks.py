"""Chunk jobs: a backfill's provider calls run concurrently, its database work in one thread."""

from __future__ import annotations

import threading
from datetime import timedelta

# Imported now, so no test's first call waits for an SDK import.
import anthropic  # noqa: F401
import openai  # noqa: F401
import pytest
from django.db import connection
from django.db.backends.signals import connection_created
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rq.timeouts import JobTimeoutException, UnixSignalDeathPenalty

from django_ai_fields.api import regenerate
from django_ai_fields.jobs import chunks
from django_ai_fields.jobs.chunks import ChunkRun
from django_ai_fields.jobs.tasks import run_chunk
from django_ai_fields.models import AIJob, AIUsage, ErrorCode, Quota, Status
from django_ai_fields.queues import get_queue
from tests.testapp.models import Article, Lead

LONG_AGO = timezone.now() - timedelta(hours=1)


def articles(count: int) -> list[Article]:
    return Article.objects.bulk_create(Article(title=f"Title {n}") for n in range(count))


def use_ai(settings, **values) -> None:  # type: ignore[no-untyped-def]
    settings.AI_FIELDS = {**settings.AI_FIELDS, **values}


@pytest.mark.django_db(transaction=True)
def test_provider_calls_overlap_up_to_concurrency(fake_provider, settings):
    use_ai(settings, CONCURRENCY=4)
    fake_provider.delay = 0.5
    fake_provider.reply_text = "Blurb"
    rows = articles(8)

    jobs = regenerate(Article.objects.all(), "blurb", sync=True)

    assert [job.status for job in jobs] == [Status.SUCCEEDED] * 8
    assert fake_provider.calls == 8
    assert fake_provider.max_in_flight == 4  # never more than CONCURRENCY, and reached
    assert set(Article.objects.values_list("blurb", flat=True)) == {"Blurb"}
    assert AIUsage.objects.filter(success=True).count() == len(rows)


@pytest.mark.django_db(transaction=True)
def test_anthropic_async_client_answers_a_chunk(fake_provider, settings):
    use_ai(settings, DEFAULT_PROVIDER="anthropic", CONCURRENCY=3)
    fake_provider.delay = 0.5
    fake_provider.reply_text = "From Claude"
    articles(3)

    jobs = regenerate(Article.objects.all(), "blurb", sync=True)

    assert {job.status for job in jobs} == {Status.SUCCEEDED}
    assert fake_provider.max_in_flight == 3
    assert {r.path for r in fake_provider.provider_requests} == {"/v1/messages"}
    assert set(Article.objects.values_list("blurb", flat=True)) == {"From Claude"}


@pytest.mark.django_db(transaction=True)
def test_database_work_stays_in_the_worker_thread(fake_provider, settings):
    """Django opens one connection per thread: only this thread opens one while
    a chunk's calls run on the event loop's threads."""
    use_ai(settings, CONCURRENCY=8)
    fake_provider.delay = 0.3
    ids = [regenerate(row, "blurb").pk for row in articles(6)]
    opened_by: list[int] = []

    def record(**kwargs: object) -> None:
        opened_by.append(threading.get_ident())

    connection.close()
    connection_created.connect(record)
    try:
        outcome = run_chunk(ids)
    finally:
        connection_created.disconnect(record)

    assert outcome == {Status.SUCCEEDED: 6}
    assert fake_provider.max_in_flight > 1
    assert opened_by == [threading.get_ident()]


@pytest.mark.django_db(transaction=True)
def test_quota_applies_per_call_inside_a_chunk(fake_provider, settings):
    use_ai(settings, CONCURRENCY=6)
    Quota.objects.create(tenant="", kind="requests", period="day", limit=3)
    articles(6)

    jobs = regenerate(Article.objects.all(), "blurb", sync=True)

    statuses = sorted((job.status, job.error_code) for job in jobs)
    assert (
        statuses == [(Status.FAILED, ErrorCode.QUOTA_EXCEEDED)] * 3 + [(Status.SUCCEEDED, "")] * 3
    )
    assert fake_provider.calls == 3


@pytest.mark.django_db(transaction=True)
def test_a_failed_call_in_a_chunk_is_retried_alone(fake_provider, settings):
    use_ai(settings, CONCURRENCY=1, RETRY_BACKOFF=0)
    fake_provider.enqueue_fault(status=500)
    articles(3)

    jobs = regenerate(Article.objects.all(), "blurb", sync=True)

    assert sorted(job.status for job in jobs) == [Status.QUEUED, Status.SUCCEEDED, Status.SUCCEEDED]
    retried = next(job for job in jobs if job.status == Status.QUEUED)
    assert retried.error_code == ErrorCode.PROVIDER_UNAVAILABLE
    assert retried.attempts == 1


@pytest.mark.django_db(transaction=True)
def test_backfill_enqueues_chunk_jobs_that_workers_run(fake_provider, settings, worker):
    use_ai(settings, CHUNK_SIZE=4)
    fake_provider.reply_text = "Chunked"
    articles(10)
    AIJob.objects.all().delete()
    get_queue().empty()

    jobs = regenerate(Article.objects.all(), "blurb")

    queue = get_queue()
    assert [len(job.args[0]) for job in queue.get_jobs()] == [4, 4, 2]
    assert {job.func_name for job in queue.get_jobs()} == {"django_ai_fields.jobs.tasks.run_chunk"}
    rq_ids = set(AIJob.objects.values_list("rq_job_id", flat=True))
    assert rq_ids == {job.id for job in queue.get_jobs()}
    worker.drain()
    assert set(
        AIJob.objects.filter(pk__in=[j.pk for j in jobs]).values_list("status", flat=True)
    ) == {Status.SUCCEEDED}
    assert set(Article.objects.values_list("blurb", flat=True)) == {"Chunked"}


@pytest.mark.django_db(transaction=True)
def test_ai_regenerate_uses_chunks(fake_provider, settings, worker):
    from django.core.management import call_command

    use_ai(settings, CHUNK_SIZE=50)
    Lead.objects.bulk_create(Lead(name=f"L{n}", company="Acme") for n in range(5))
    get_queue().empty()

    call_command("ai_regenerate", "testapp.Lead", "--field", "summary", verbosity=0)

    queue = get_queue()
    assert [len(job.args[0]) for job in queue.get_jobs()] == [5]
    worker.drain()
    assert Lead.objects.exclude(summary=None).count() == 5


@pytest.mark.django_db(transaction=True)
def test_jobs_a_chunk_has_not_started_stay_fresh_for_the_sweep():
    job = regenerate(articles(1)[0], "blurb")
    AIJob.objects.filter(pk=job.pk).update(status=Status.QUEUED, updated_at=LONG_AGO)
    run = ChunkRun([job.pk])
    run.touched -= chunks.HEARTBEAT

    run.keep_waiting_jobs_alive()

    job.refresh_from_db()
    assert job.updated_at > timezone.now() - timedelta(minutes=1)


@pytest.mark.django_db(transaction=True)
def test_an_empty_or_finished_chunk_does_nothing(fake_provider):
    assert run_chunk([]) == {}
    assert run_chunk([123456]) == {"skipped": 1}
    assert fake_provider.calls == 0


@pytest.mark.django_db(transaction=True)
def test_rq_timeout_hands_unfinished_jobs_back(fake_provider, settings):
    """RQ's job timeout (its own SIGALRM death penalty) stops a chunk mid-call: the
    job waiting for its call is retried like a timed-out call, the job not yet
    started goes back to the queue untouched."""
    use_ai(settings, CONCURRENCY=1, JOB_TIMEOUT=1, RETRY_BACKOFF=0)
    fake_provider.delay = 2.5
    ids = [regenerate(row, "blurb").pk for row in articles(3)]
    get_queue().empty()

    with pytest.raises(JobTimeoutException), UnixSignalDeathPenalty(4, JobTimeoutException):
        run_chunk(ids)

    found = AIJob.objects.in_bulk(ids)
    done, cut, untouched = (found[pk] for pk in ids)
    assert (done.status, done.attempts) == (Status.SUCCEEDED, 1)
    assert (cut.status, cut.error_code, cut.attempts) == (Status.QUEUED, ErrorCode.TIMEOUT, 1)
    assert (untouched.status, untouched.attempts) == (Status.QUEUED, 0)
    assert AIUsage.objects.filter(job=cut, success=False, error_code=ErrorCode.TIMEOUT).exists()
    chunk_args = [job.args[0] for job in get_queue().get_jobs() if job.func_name.endswith("chunk")]
    assert chunk_args == [[untouched.pk]]


@pytest.mark.django_db(transaction=True)
def test_a_backfill_requests_its_jobs_in_constant_queries():
    articles(30)
    AIJob.objects.all().delete()
    regenerate(Article.objects.order_by("pk")[:1], "blurb")  # content types cached
    counts = []
    for rows in (Article.objects.order_by("pk")[1:6], Article.objects.order_by("pk")[6:30]):
        with CaptureQueriesContext(connection) as requested:
            jobs = regenerate(rows, "blurb")
        assert {job.status for job in jobs} == {Status.PENDING}
        counts.append(len(requested))
    assert counts[0] == counts[1]
    assert AIJob.objects.count() == 30


@pytest.mark.django_db(transaction=True)
def test_a_backfill_reuses_a_rows_open_job():
    rows = articles(3)
    AIJob.objects.all().delete()
    open_job = regenerate(rows[1], "blurb")

    jobs = regenerate(Article.objects.order_by("pk"), "blurb")

    assert [job.object_id for job in jobs] == [str(row.pk) for row in rows]
    assert jobs[1].pk == open_job.pk
    assert AIJob.objects.count() == 3
