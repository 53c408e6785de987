"""Recovery: jobs whose worker died, jobs Redis lost, and the periodic sweep."""

from __future__ import annotations

import io
import os
import signal
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone
from rq.job import Job

from django_ai_fields import signals
from django_ai_fields.api import regenerate
from django_ai_fields.jobs.sweep import schedule_sweep
from django_ai_fields.jobs.tasks import periodic_sweep
from django_ai_fields.models import AIJob, AIUsage, ErrorCode, Phase, Status
from django_ai_fields.queues import get_queue
from tests.conftest import REAL_REDIS, Worker
from tests.fake_provider import FakeProvider
from tests.testapp.models import Lead

pytestmark = pytest.mark.django_db(transaction=True)

LONG_AGO = timedelta(minutes=10)


def configure(settings: Any, **values: Any) -> None:
    settings.AI_FIELDS = {**settings.AI_FIELDS, **values}


def make_job(field_name: str = "heat") -> tuple[Lead, AIJob]:
    """A lead saved without signals, and one queued job for ``field_name``."""
    (lead,) = Lead.objects.bulk_create([Lead(name="Ada", company="Acme", notes="Hot prospect")])
    return lead, regenerate(lead, field_name)


def requeue() -> str:
    out = io.StringIO()
    call_command("ai_requeue", stdout=out)
    return out.getvalue()


def wait_for(condition: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def kill_worker_mid_job(job: AIJob, fp: FakeProvider, worker: Worker) -> None:
    """Leave ``job`` as a worker killed during the provider call leaves it."""
    if REAL_REDIS:
        fp.enqueue_fault(delay=120)  # the call is in flight when the worker dies
        process = worker.start()
        try:
            wait_for(lambda: fp.calls == 1)
            assert AIJob.objects.get(pk=job.pk).status == Status.RUNNING
        finally:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
    else:
        # A SimpleWorker shares our process; do what a SIGKILLed one leaves behind:
        # the RQ job taken off the queue, the AIJob leased and never finished.
        get_queue().empty()
        AIJob.objects.filter(pk=job.pk).update(
            status=Status.RUNNING,
            run_token="dead-worker",
            attempts=1,
            started_at=timezone.now(),
            phase=Phase.AI_CALL,
        )


@pytest.fixture
def updates() -> Iterator[list[dict[str, Any]]]:
    received: list[dict[str, Any]] = []

    def receive(**kwargs: Any) -> None:
        received.append(kwargs)

    signals.field_updated.connect(receive, weak=False, dispatch_uid="recovery-updates")
    yield received
    signals.field_updated.disconnect(dispatch_uid="recovery-updates")


def test_a_job_whose_worker_died_is_requeued_and_completed_once(fake_provider, worker, updates):
    fake_provider.reply_text = "hot"
    lead, job = make_job()
    kill_worker_mid_job(job, fake_provider, worker)

    job.refresh_from_db()
    assert (job.status, job.attempts) == (Status.RUNNING, 1)
    assert job.run_token
    assert "0 lost job(s) requeued" in requeue()  # within JOB_TIMEOUT: maybe still alive
    assert AIJob.objects.get(pk=job.pk).status == Status.RUNNING

    AIJob.objects.filter(pk=job.pk).update(started_at=timezone.now() - LONG_AGO)
    report = requeue()
    assert "1 lost job(s) requeued" in report
    assert "1 pending job(s) enqueued" in report
    assert len(get_queue()) == 1
    worker.drain()

    job.refresh_from_db()
    assert (job.status, job.attempts, job.run_token) == (Status.SUCCEEDED, 2, "")
    lead.refresh_from_db()
    assert lead.heat == "hot"
    assert AIUsage.objects.filter(job=job, success=True).count() == 1
    if not REAL_REDIS:  # a real worker's signals fire in its own process
        assert [(u["field_name"], u["value"]) for u in updates] == [("heat", "hot")]


def test_a_lost_job_without_attempts_left_fails_as_timeout(fake_provider, settings):
    configure(settings, MAX_ATTEMPTS=2)
    _lead, job = make_job()
    get_queue().empty()
    AIJob.objects.filter(pk=job.pk).update(
        status=Status.RUNNING,
        run_token="dead-worker",
        attempts=2,
        started_at=timezone.now() - LONG_AGO,
    )
    assert "1 lost job(s) failed" in requeue()

    job.refresh_from_db()
    assert (job.status, job.error_code, job.run_token) == (Status.FAILED, ErrorCode.TIMEOUT, "")
    assert job.finished_at is not None
    assert len(get_queue()) == 0
    assert fake_provider.calls == 0


def test_queued_jobs_whose_rq_job_vanished_are_enqueued_again(fake_provider, settings, worker):
    configure(settings, PENDING_GRACE=0)
    fake_provider.reply_text = "warm"
    lead, job = make_job()
    lost_rq_id = AIJob.objects.get(pk=job.pk).rq_job_id
    get_queue().connection.flushdb()
    assert len(get_queue()) == 0

    assert "1 pending job(s) enqueued" in requeue()
    job.refresh_from_db()
    assert job.status == Status.QUEUED
    assert job.rq_job_id not in ("", lost_rq_id)
    assert get_queue().job_ids == [job.rq_job_id]

    assert "0 pending job(s) enqueued" in requeue()  # its RQ job exists now
    assert len(get_queue()) == 1
    worker.drain()
    lead.refresh_from_db()
    assert lead.heat == "warm"
    assert fake_provider.calls == 1


def test_schedule_sweep_schedules_one_periodic_sweep(settings):
    configure(settings, SWEEP_INTERVAL=60)
    schedule_sweep()
    schedule_sweep()

    queue = get_queue()
    registry = queue.scheduled_job_registry
    (rq_id,) = registry.get_job_ids()
    assert Job.fetch(rq_id, connection=queue.connection).func_name == (
        "django_ai_fields.jobs.tasks.periodic_sweep"
    )
    due_in = (registry.get_scheduled_time(rq_id) - timezone.now()).total_seconds()
    assert 50 < due_in <= 60


def test_no_sweep_is_scheduled_when_the_interval_is_zero(settings):
    configure(settings, SWEEP_INTERVAL=0)
    schedule_sweep()
    assert get_queue().scheduled_job_registry.get_job_ids() == []


def test_a_worker_running_a_job_schedules_the_sweep(fake_provider, settings, worker):
    configure(settings, SWEEP_INTERVAL=60)
    make_job()
    worker.drain()
    (rq_id,) = get_queue().scheduled_job_registry.get_job_ids()
    assert Job.fetch(rq_id, connection=get_queue().connection).func_name.endswith("periodic_sweep")


def test_the_periodic_sweep_enqueues_stale_pending_jobs_and_reschedules(settings):
    configure(settings, SWEEP_INTERVAL=60, PENDING_GRACE=0)
    _lead, job = make_job()
    get_queue().empty()
    AIJob.objects.filter(pk=job.pk).update(status=Status.PENDING, rq_job_id="")

    assert "1 pending job(s) enqueued" in periodic_sweep()
    job.refresh_from_db()
    assert job.status == Status.QUEUED
    assert get_queue().job_ids == [job.rq_job_id]
    registry = get_queue().scheduled_job_registry
    assert len(registry.get_job_ids()) == 1  # its own next run
    schedule_sweep()
    assert len(registry.get_job_ids()) == 1
