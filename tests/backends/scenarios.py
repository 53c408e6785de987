"""What every task backend must do with a real worker, written once: a live save, a
backfill, a retry after a 429, and a worker killed mid-call (recovered by the sweep,
nothing lost, nothing written twice)."""

from __future__ import annotations

import io
import time
from collections.abc import Callable

from django.core.management import call_command
from django.db import close_old_connections

from django_ai_fields.models import FINISHED_STATUSES, AIJob, AIUsage, Status
from tests.fake_provider import FakeProvider
from tests.testapp.models import Article

DEADLINE = 60.0  # seconds a scenario's jobs may take to finish


def wait_for_jobs(expected: int, describe: Callable[[], str] = str) -> list[AIJob]:
    """Until ``expected`` jobs have finished (each run by the worker), or fail."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        close_old_connections()
        if AIJob.objects.filter(status__in=FINISHED_STATUSES).count() >= expected:
            return list(AIJob.objects.order_by("pk"))
        time.sleep(0.1)
    jobs = list(AIJob.objects.values("pk", "status", "attempts", "error", "rq_job_id"))
    raise AssertionError(f"jobs not finished in {DEADLINE} s: {jobs}\n{describe()}")


def first_call(fake_provider: FakeProvider, describe: Callable[[], str]) -> float:
    """Wait for the provider's first call; returns when it was seen."""
    deadline = time.monotonic() + DEADLINE
    while fake_provider.calls < 1:
        assert time.monotonic() < deadline, f"no provider call in {DEADLINE} s\n{describe()}"
        time.sleep(0.02)
    return time.time()


def live_save(fake_provider: FakeProvider, describe: Callable[[], str]) -> None:
    article = Article.objects.create(title="Live")
    (job,) = wait_for_jobs(1, describe)
    assert job.status == Status.SUCCEEDED, job.error
    article.refresh_from_db()
    assert article.blurb == "fake reply #1"
    assert fake_provider.calls == 1


def backfill(fake_provider: FakeProvider, describe: Callable[[], str], rows: int = 12) -> None:
    Article.objects.bulk_create([Article(title=f"Row {i}") for i in range(rows)])
    call_command("ai_regenerate", "testapp.Article", "--field", "blurb", stdout=io.StringIO())
    jobs = wait_for_jobs(rows, describe)
    assert {job.status for job in jobs} == {Status.SUCCEEDED}
    tasks = {job.rq_job_id for job in jobs}
    assert len(tasks) == rows // 4, [(j.pk, j.rq_job_id, j.attempts, j.steps) for j in jobs]
    assert fake_provider.calls == rows
    assert not Article.objects.filter(blurb__isnull=True).exists()


def retry_after_429(fake_provider: FakeProvider, describe: Callable[[], str]) -> None:
    fake_provider.enqueue_fault(status=429, headers={"Retry-After": "1"})
    article = Article.objects.create(title="Limited")
    limited_at = first_call(fake_provider, describe)
    (job,) = wait_for_jobs(1, describe)
    assert job.status == Status.SUCCEEDED, job.error
    assert job.attempts == 2
    article.refresh_from_db()
    assert article.blurb == "fake reply #2"
    assert fake_provider.calls == 2
    # The retry waited out Retry-After: a delayed task of its own, run a second later.
    assert job.started_at is not None
    assert job.started_at.timestamp() - limited_at >= 0.8


def killed_mid_call(
    fake_provider: FakeProvider, describe: Callable[[], str], kill: Callable[[], None]
) -> None:
    """The worker dies while the provider holds its call: the lease runs out
    (JOB_TIMEOUT), the sweep hands the job over again, another process runs it."""
    fake_provider.enqueue_fault(delay=30)  # the first call hangs until the kill
    article = Article.objects.create(title="Doomed")
    first_call(fake_provider, describe)
    kill()
    (job,) = wait_for_jobs(1, describe)
    assert job.status == Status.SUCCEEDED, job.error
    assert job.attempts == 2
    article.refresh_from_db()
    assert article.blurb == "fake reply #2"
    assert fake_provider.calls == 2
    # The killed call was never booked; the second once: nothing counted twice.
    assert AIUsage.objects.filter(job=job, success=True).count() == 1
