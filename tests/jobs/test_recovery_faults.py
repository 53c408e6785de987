"""Issue #5 recovery: runs RQ saw die, the database lost mid-job, Redis lost mid-run,
and quota reservations of killed runs. (tests/jobs/test_recovery.py covers the basics.)

With REDIS_URL the deaths are real (a SIGKILLed work horse, a worker whose database
is unreachable); on fakeredis the same states are built with RQ's own failure path.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection, connections
from django.db.utils import OperationalError
from django.test import override_settings
from django.utils import timezone
from rq.job import Job, JobStatus
from rq.job_lifecycle import record_job_failure

from django_ai_fields.jobs import sweep
from django_ai_fields.jobs.tasks import run_job
from django_ai_fields.models import AIUsage, CallState, ErrorCode, Quota, Status
from django_ai_fields.money import quotas
from django_ai_fields.queues import get_queue
from django_ai_fields.rq_worker import SimpleWorker
from tests.conftest import REAL_REDIS, Worker
from tests.fake_provider import FakeProvider
from tests.intake.test_outbox import REDIS_DOWN
from tests.jobs.test_recovery import wait_for
from tests.reliability_support import calls_of, configure, fresh, job_for, on_next_lead_load

pytestmark = pytest.mark.django_db(transaction=True)

POSTGRES = connection.vendor == "postgresql"


def requeue() -> str:
    out = io.StringIO()
    call_command("ai_requeue", stdout=out)
    return out.getvalue()


def rq_status(rq_id: str) -> str | None:
    return Job.fetch(rq_id, connection=get_queue().connection).get_status()


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def fail_rq_job_as_rq_does(rq_id: str, exc_string: str) -> None:
    """Take the RQ job off the queue and record its failure through RQ's own path."""
    queue = get_queue()
    queue.remove(rq_id)
    rq_job = Job.fetch(rq_id, connection=queue.connection)
    with queue.connection.pipeline() as pipe:
        record_job_failure(rq_job, exc_string, pipe)
        pipe.execute()


def kill_work_horse_mid_call(job: Any, fp: FakeProvider, worker: Worker) -> None:
    """The job's work horse dies during the provider call; its worker lives on and
    tells RQ. On fakeredis: the states that leaves (AIJob leased, RQ job failed)."""
    if REAL_REDIS:
        fp.enqueue_fault(delay=120)
        process = worker.start()
        try:
            wait_for(lambda: fp.calls == 1)
            (horse,) = children(process.pid)
            os.kill(horse, signal.SIGKILL)
            wait_for(lambda: rq_status(fresh(job).rq_job_id) == JobStatus.FAILED)
        finally:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        return
    from django_ai_fields.jobs.lifecycle import lease

    rq_id = fresh(job).rq_job_id
    leased = lease(job.pk)
    assert leased is not None
    fail_rq_job_as_rq_does(rq_id, "Work-horse terminated unexpectedly; waitpid returned 9")


def test_a_killed_work_horse_is_recovered_at_once_not_after_job_timeout(fake_provider, worker):
    fake_provider.reply_text = "hot"
    lead, job = job_for("heat")
    dead_rq_id = fresh(job).rq_job_id
    kill_work_horse_mid_call(job, fake_provider, worker)
    job = fresh(job)
    assert (job.status, job.attempts, job.rq_job_id) == (Status.RUNNING, 1, dead_rq_id)
    assert dead_rq_id in get_queue().failed_job_registry.get_job_ids()

    assert "1 lost job(s) requeued" in requeue()  # started seconds ago: JOB_TIMEOUT not needed
    job = fresh(job)
    assert job.status == Status.QUEUED and job.rq_job_id != dead_rq_id
    worker.drain()
    job = fresh(job)
    assert (job.status, job.attempts) == (Status.SUCCEEDED, 2)
    assert AIUsage.objects.filter(job=job, success=True).count() == 1
    lead.refresh_from_db()
    assert lead.heat == "hot"
    assert "0 lost job(s) requeued" in requeue()  # the old failure is not acted on twice


def test_a_killed_run_without_attempts_left_fails_and_agrees_with_rq(
    fake_provider, worker, settings
):
    configure(settings, MAX_ATTEMPTS=1)
    _lead, job = job_for("heat")
    kill_work_horse_mid_call(job, fake_provider, worker)
    assert "1 lost job(s) failed" in requeue()
    job = fresh(job)
    assert (job.status, job.error_code) == (Status.FAILED, ErrorCode.INTERNAL)
    assert rq_status(job.rq_job_id) == JobStatus.FAILED  # both say failed
    assert job.finished_at is not None


def test_a_job_whose_lease_failed_with_the_database_down_is_enqueued_again(fake_provider, worker):
    fake_provider.reply_text = "cold"
    lead, job = job_for("heat")
    dead_rq_id = fresh(job).rq_job_id
    if REAL_REDIS:
        # A real worker whose database is unreachable: lease() raises, RQ fails the run.
        env = worker.env()
        env["DATABASE_URL"] = "postgres://postgres@127.0.0.1:1/test"
        env.pop("AI_FIELDS_TEST_SQLITE", None)
        if not os.environ.get("DATABASE_URL"):
            env["AI_FIELDS_TEST_SQLITE"] = "/nonexistent/dir/db.sqlite3"
        subprocess.run(
            worker.command("--burst"), env=env, cwd=worker_root(), timeout=120, check=False
        )
    else:
        fail_rq_job_as_rq_does(dead_rq_id, "OperationalError: connection refused")
    assert rq_status(dead_rq_id) == JobStatus.FAILED
    assert fresh(job).status == Status.QUEUED  # the lease never happened

    assert "1 lost job(s) requeued" in requeue()
    worker.drain()
    job = fresh(job)
    assert (job.status, job.attempts) == (Status.SUCCEEDED, 1)
    lead.refresh_from_db()
    assert lead.heat == "cold"


def worker_root() -> Path:
    from tests.conftest import ROOT

    return ROOT


# --------------------------------------------------------------------------- database lost


@pytest.fixture
def drop_connection_once() -> Iterator[Callable[[], None]]:
    """Arms a dropped database connection for the engine's next load of a Lead."""

    def drop() -> None:
        raise OperationalError("server closed the connection unexpectedly")

    yield from on_next_lead_load(drop, "drop-connection")


def test_a_dropped_database_connection_retries_the_job(fake_provider, drop_connection_once):
    fake_provider.reply_text = "warm"
    lead, job = job_for("heat")
    drop_connection_once()
    assert run_job(job.pk) == Status.QUEUED
    job = fresh(job)
    assert (job.status, job.attempts, job.error_code) == (Status.QUEUED, 1, ErrorCode.INTERNAL)
    assert "Database connection lost" in job.error
    assert fake_provider.calls == 0
    assert run_job(job.pk) == Status.SUCCEEDED
    lead.refresh_from_db()
    assert lead.heat == "warm"


def test_a_dropped_connection_on_the_last_attempt_fails_as_internal(
    fake_provider, settings, drop_connection_once
):
    configure(settings, MAX_ATTEMPTS=1)
    _lead, job = job_for("heat")
    drop_connection_once()
    assert run_job(job.pk) == Status.FAILED
    assert fresh(job).error_code == ErrorCode.INTERNAL


@pytest.mark.skipif(not POSTGRES, reason="needs PostgreSQL (DATABASE_URL): SQLite never drops")
def test_postgres_terminating_the_connection_mid_call_retries_and_keeps_the_call_counted(
    fake_provider,
):
    import psycopg

    from tests.settings import DATABASES

    Quota.objects.create(tenant="", kind="requests", period="day", limit=10)
    engine_connection = connections["default"]  # this thread's: the one run_job uses
    db = DATABASES["default"]
    dsn = f"host={db['HOST']} port={db['PORT']} user={db['USER']} dbname={db['TEST']['NAME']}"

    def terminate_then_answer(request: Any) -> str:
        if request.call_number == 1:
            pid = engine_connection.connection.info.backend_pid
            with psycopg.connect(dsn, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        return "hot"

    fake_provider.responder = terminate_then_answer
    lead, job = job_for("heat")
    assert run_job(job.pk) == Status.QUEUED  # reconnected, and the job goes round again
    job = fresh(job)
    assert (job.attempts, job.error_code, job.reservations) == (1, ErrorCode.INTERNAL, [])
    # The call left (the provider bills it) but its booking was lost with the
    # connection: it stays counted at its worst case, its reservation spent.
    assert quotas.usage_for("", "requests", "day") == 1
    assert AIUsage.objects.get(job=job).call_state == CallState.SENT
    assert run_job(job.pk) == Status.SUCCEEDED
    assert quotas.usage_for("", "requests", "day") == 2
    lead.refresh_from_db()
    assert lead.heat == "hot"


# --------------------------------------------------------------------------- Redis lost


def test_redis_down_for_the_whole_run_the_job_still_completes(fake_provider):
    fake_provider.reply_text = "warm"
    lead, job = job_for("heat")
    with override_settings(RQ_QUEUES=REDIS_DOWN):
        assert run_job(job.pk) == Status.SUCCEEDED
    lead.refresh_from_db()
    assert lead.heat == "warm"


def test_redis_down_when_a_retry_is_enqueued_leaves_the_job_pending_then_done(
    fake_provider, worker, settings
):
    configure(settings, PENDING_GRACE=0)
    fake_provider.reply_text = "warm"
    fake_provider.enqueue_fault(status=503)
    _lead, job = job_for("heat")
    with override_settings(RQ_QUEUES=REDIS_DOWN):
        assert run_job(job.pk) == Status.QUEUED
    job = fresh(job)
    assert (job.status, job.attempts, job.error_code) == (Status.PENDING, 1, "provider_unavailable")
    get_queue().empty()  # the original RQ job ran in-process above
    assert "1 pending job(s) enqueued" in requeue()
    worker.drain()
    job = fresh(job)
    assert (job.status, job.attempts) == (Status.SUCCEEDED, 2)
    assert calls_of(job) == [
        ("openai", "gpt-4o-mini", "provider_unavailable"),
        ("openai", "gpt-4o-mini", ""),
    ]


# --------------------------------------------------------------------------- quotas of dead runs


def test_a_run_killed_mid_call_keeps_its_call_counted_and_the_retry_counts_too(
    fake_provider, worker, settings
):
    configure(settings, MAX_ATTEMPTS=3)
    Quota.objects.create(tenant="", kind="requests", period="day", limit=10)
    fake_provider.reply_text = "hot"
    _lead, job = job_for("heat")
    if REAL_REDIS:
        kill_work_horse_mid_call(job, fake_provider, worker)  # its call had left
    else:
        from django_ai_fields.jobs.engine import job_pipeline

        rq_id = fresh(job).rq_job_id
        run = job_pipeline(job.pk)
        next(run)  # held where its request leaves, never resumed: the horse died there
        fail_rq_job_as_rq_does(rq_id, "Work-horse terminated unexpectedly")
    assert quotas.usage_for("", "requests", "day") == 1  # the dead run's call
    requeue()
    assert quotas.usage_for("", "requests", "day") == 1  # not released: the call left
    worker.drain()
    assert fresh(job).status == Status.SUCCEEDED
    assert quotas.usage_for("", "requests", "day") == 2  # two calls, both counted
    states = AIUsage.objects.filter(job=job).order_by("pk").values_list("call_state", flat=True)
    assert list(states) == [CallState.SENT, CallState.SETTLED]
    assert timezone.now() >= fresh(job).finished_at


# --------------------------------------------------------------------------- the sweep itself


@pytest.mark.parametrize("where", ["started", "intermediate"])
def test_a_job_taken_by_a_worker_that_died_before_leasing_is_enqueued_again(
    fake_provider, worker, settings, where
):
    configure(settings, PENDING_GRACE=0)
    fake_provider.reply_text = "warm"
    lead, job = job_for("heat")
    queue = get_queue()
    rq_id = fresh(job).rq_job_id
    queue.remove(rq_id)  # dequeued by a worker that then died, before its lease
    if where == "started":
        Job.fetch(rq_id, connection=queue.connection).set_status(JobStatus.STARTED)
    else:
        queue.connection.rpush(queue.intermediate_queue_key, rq_id)
    assert fresh(job).status == Status.QUEUED and len(queue) == 0

    assert "1 pending job(s) enqueued" in requeue()
    worker.drain()
    assert (fresh(job).status, fresh(job).attempts) == (Status.SUCCEEDED, 1)
    lead.refresh_from_db()
    assert lead.heat == "warm"


def test_a_late_scheduled_sweep_is_run_directly_once_per_interval(settings):
    from django_ai_fields.jobs import sweep

    configure(settings, SWEEP_INTERVAL=60)
    queue = get_queue()
    sweep.schedule_sweep()
    (scheduled,) = queue.scheduled_job_registry.get_job_ids()
    sweep.schedule_sweep()
    assert len(queue) == 0  # on time: nothing more
    # RQ's scheduler is down (its worker died holding the lock): the sweep is late.
    queue.connection.set(sweep.DUE_KEY, "0")
    sweep.schedule_sweep()
    sweep.schedule_sweep()
    (kicked,) = queue.get_jobs()
    assert kicked.func_name.endswith("periodic_sweep")
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    # The direct run did not re-arm a second schedule; the scheduled one is still the one.
    assert queue.scheduled_job_registry.get_job_ids() == [scheduled]
    assert queue.connection.get(sweep.SCHEDULED_KEY).decode() == scheduled


def refuse_queries(*args: Any) -> None:
    """A connection.execute_wrapper: every query fails as while PostgreSQL restarts."""
    raise OperationalError("connection failed: the database system is shutting down")


def run_worker(*, database_down: bool = False) -> None:
    """An in-process ``rqworker --with-scheduler --burst``: enqueues the due scheduled
    jobs, then runs the queue until it is empty."""
    queue = get_queue()
    worker = SimpleWorker([queue], connection=queue.connection)
    with connection.execute_wrapper(refuse_queries) if database_down else nullcontext():
        worker.work(burst=True, with_scheduler=True)


def make_sweep_due() -> str:
    """The scheduled periodic sweep's time has come (RQ's scheduler enqueues it)."""
    registry = get_queue().scheduled_job_registry
    (rq_id,) = registry.get_job_ids()
    registry.connection.zadd(registry.key, {rq_id: 0})
    return str(rq_id)


def test_a_sweep_failing_while_the_database_restarts_schedules_the_next_one(
    fake_provider, settings
):
    configure(settings, SWEEP_INTERVAL=60)
    fake_provider.reply_text = "cold"
    lead, job = job_for("heat")
    rq_id = fresh(job).rq_job_id
    sweep.schedule_sweep()
    # PostgreSQL restarts: the worker fails the job's run at its lease, then the
    # sweep (both within milliseconds), and the queue is empty.
    run_worker(database_down=True)
    failed_sweep = make_sweep_due()
    run_worker(database_down=True)
    assert {rq_id, failed_sweep} <= set(get_queue().failed_job_registry.get_job_ids())
    assert fresh(job).status == Status.QUEUED and len(get_queue()) == 0

    # The database is back: the sweep the failed one scheduled recovers the job.
    assert make_sweep_due() != failed_sweep
    run_worker()
    job = fresh(job)
    assert (job.status, job.attempts) == (Status.SUCCEEDED, 1)
    lead.refresh_from_db()
    assert lead.heat == "cold"


def test_the_periodic_sweep_runs_ahead_of_a_backlog(settings):
    configure(settings, SWEEP_INTERVAL=60)
    for _ in range(3):
        job_for("heat")
    queue = get_queue()
    sweep.schedule_sweep()
    scheduled = make_sweep_due()
    queue.connection.set(sweep.DUE_KEY, "0")  # and late: one direct run is enqueued too
    sweep.schedule_sweep()
    (kicked,) = [j for j in queue.get_jobs() if j.func_name.endswith("periodic_sweep")]

    SimpleWorker([queue], connection=queue.connection).work(
        burst=True, with_scheduler=True, max_jobs=2
    )
    assert rq_status(scheduled) == rq_status(kicked.id) == JobStatus.FINISHED
    # The backlog (one drain for the three AI jobs) is still waiting behind them.
    assert [j.func_name for j in queue.get_jobs()] == ["django_ai_fields.jobs.tasks.run_drain"]
