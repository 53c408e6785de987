"""No silent waits (issue 18, docs/deployment.md#no-silent-waits-stuck_after): a job
pending or queued past ``STUCK_AFTER`` is named by ``ai_status`` with its reason (the
command fails), shown by the admin's *stuck* filter, logged once by the sweep with the
reason the code can tell, and counted in the metrics."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rq import Worker

from django_ai_fields.jobs import stuck, sweep
from django_ai_fields.models import AIJob, Status
from django_ai_fields.queues import get_queue
from tests.intake.test_outbox import REDIS_DOWN
from tests.observability.test_observability import sample
from tests.surfaces import make_user
from tests.testapp.models import Article

pytestmark = pytest.mark.django_db(transaction=True)

LOGGER = "django_ai_fields"


def waiting_article(title: str = "Tea", minutes: int = 10) -> AIJob:
    """An article whose job has waited ``minutes`` (queued, or pending if Redis is down)."""
    Article.objects.create(title=title)
    job = AIJob.objects.filter(field_name="blurb").latest("pk")
    AIJob.objects.filter(pk=job.pk).update(updated_at=timezone.now() - timedelta(minutes=minutes))
    return AIJob.objects.get(pk=job.pk)


@pytest.fixture
def idle_worker() -> Iterator[Worker]:
    """A worker registered on the AI queue (so "no worker" is not the reason)."""
    queue = get_queue()
    worker = Worker([queue], connection=queue.connection)
    worker.register_birth()
    try:
        yield worker
    finally:
        worker.register_death()


def stuck_logs(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "stuck_reason", None)]


def ai_status() -> tuple[str, str]:
    """ai_status's output and its failure (exit code 1 from the command line)."""
    out = io.StringIO()
    with pytest.raises(CommandError) as failed:
        call_command("ai_status", "--no-providers", stdout=out)
    return out.getvalue(), str(failed.value)


def test_a_queued_job_no_worker_takes_is_named_logged_once_and_counted(caplog) -> None:
    job = waiting_article()
    assert job.status == Status.QUEUED
    Article.objects.create(title="Fresh")  # waited less than STUCK_AFTER: not stuck
    before = sample("django_ai_fields_jobs_stuck_total", reason="no_worker")

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        sweep.sweep()
        sweep.sweep()
        output, failure = ai_status()

    (record,) = stuck_logs(caplog)  # two sweeps and ai_status: one line
    assert record.stuck_reason == "no_worker"  # type: ignore[attr-defined]
    assert f"AI job {job.pk} (testapp.article:" in record.getMessage()
    assert "no worker listens on queue 'default'" in record.getMessage()
    assert sample("django_ai_fields_jobs_stuck_total", reason="no_worker") - before == 1
    assert f"#{job.pk} queued since" in output
    assert ": no worker listens on queue 'default'" in output
    assert "Stuck jobs: 1" in output
    assert "1 stuck job(s)" in failure


def test_a_job_that_moves_and_waits_again_is_logged_again(caplog) -> None:
    job = waiting_article()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert stuck.report() == 1
        assert stuck.report() == 0
        now = timezone.now()
        AIJob.objects.filter(pk=job.pk).update(  # reported, handed over since, waits again
            stuck_reported_at=now - timedelta(minutes=20), updated_at=now - timedelta(minutes=6)
        )
        assert stuck.report() == 1
    assert len(stuck_logs(caplog)) == 2


def test_a_pending_job_with_the_queue_unreachable_says_so(caplog) -> None:
    with override_settings(RQ_QUEUES=REDIS_DOWN):
        job = waiting_article()
        assert job.status == Status.PENDING
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            stuck.report()
            output, _failure = ai_status()
    (record,) = stuck_logs(caplog)
    assert record.stuck_reason == "queue_unreachable"  # type: ignore[attr-defined]
    assert f"#{job.pk} pending since" in output
    assert ": queue unreachable (ConnectionError" in output


def test_a_row_the_workers_database_cannot_see_is_the_reason(idle_worker, caplog) -> None:
    job = waiting_article()
    with connection.cursor() as cursor:  # as if it had been written to another database
        table = connection.ops.quote_name(Article._meta.db_table)
        cursor.execute(f"DELETE FROM {table} WHERE id = %s", [int(job.object_id)])
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        stuck.report()
        output, _failure = ai_status()
    (record,) = stuck_logs(caplog)
    assert record.stuck_reason == "row_not_visible"  # type: ignore[attr-defined]
    assert "the row is not visible from the worker's database 'default'" in output


def test_with_a_worker_listening_the_reason_is_a_busy_queue(idle_worker, caplog) -> None:
    waiting_article()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        stuck.report()
    (record,) = stuck_logs(caplog)
    assert record.stuck_reason == "waiting"  # type: ignore[attr-defined]
    assert "workers busy" in record.getMessage()


def test_finding_stuck_jobs_is_one_query_on_the_status_index(idle_worker) -> None:
    for n in range(5):
        waiting_article(f"Tea {n}")
    stuck.report()  # all reported: nothing left to log
    with CaptureQueriesContext(connection) as queries:
        assert stuck.report() == 0
    (select,) = [q["sql"] for q in queries.captured_queries if "ai_fields_aijob" in q["sql"]]
    assert '"status" IN' in select.replace("`", '"') and "updated_at" in select


def test_the_admin_filters_stuck_jobs(client) -> None:
    old = waiting_article("Old")
    Article.objects.create(title="New")
    client.force_login(make_user("root", superuser=True))
    url = "/admin/django_ai_fields/aijob/"

    page = client.get(url, {"stuck": "yes"})

    assert page.status_code == 200
    shown = [job.pk for job in page.context["cl"].result_list]
    assert shown == [old.pk]
    assert len(client.get(url).context["cl"].result_list) == 2
