"""Issue #20: finished jobs are counted per day in AIJobDaily, so analytics/performance/
reads a small table; the counts equal the job table's at every step (tallied by the
sweep, taken out again by a restart or a review, the untallied ones read live)."""

from __future__ import annotations

import datetime
from collections import Counter
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_ai_fields.dispatch import tally, transitions
from django_ai_fields.models import UNFINISHED_STATUSES, AIJob, AIJobDaily
from django_ai_fields.observability import analytics

# Migrating back and forth inside a test needs DDL in transactions (not MariaDB/MySQL).
NEEDS_DDL_ROLLBACK = pytest.mark.skipif(
    not connection.features.can_rollback_ddl,
    reason="migrating back and forth needs transactional DDL (MariaDB/MySQL have none)",
)

JOB_TABLE = connection.ops.quote_name("django_ai_fields_aijob")


def by_hand() -> dict[str, Any]:
    """job_failures() computed in Python from the job table."""
    finished = [job for job in AIJob.objects.all() if job.status not in UNFINISHED_STATUSES]
    failed = Counter(job.error_code or "unknown" for job in finished if job.status == "failed")
    return {"finished": len(finished), "failed": sum(failed.values()), "by_code": dict(failed)}


def reported(jobs: Any = None) -> dict[str, Any]:
    body = analytics.job_failures(AIJob.objects.all() if jobs is None else jobs)
    return {
        "finished": body["finished"],
        "failed": body["failed"],
        "by_code": body["failed_by_code"],
    }


def make_job(status: str, error_code: str = "", tenant: str = "acme", **values: Any) -> AIJob:
    return AIJob.objects.create(
        status=status, error_code=error_code, tenant=tenant, function="f", **values
    )


def tallied() -> dict[tuple[str, str, str], int]:
    rows = AIJobDaily.objects.filter(jobs__gt=0)
    return {(row.tenant, row.status, row.error_code): row.jobs for row in rows}


@pytest.mark.django_db
def test_finished_jobs_are_tallied_once_and_counted_exactly_throughout():
    for status, code in [("succeeded", ""), ("failed", "timeout"), ("failed", "")]:
        make_job(status, code)
    make_job("cancelled", tenant="globex")
    make_job("pending")
    make_job("running")
    assert reported() == by_hand()  # nothing tallied yet: read from the job table
    assert tally.catch_up() == 4
    assert tally.catch_up() == 0  # idempotent
    assert reported() == by_hand()
    assert tallied() == {
        ("acme", "succeeded", ""): 1,
        ("acme", "failed", "timeout"): 1,
        ("acme", "failed", ""): 1,
        ("globex", "cancelled", ""): 1,
    }
    assert set(AIJob.objects.filter(tallied=False).values_list("status", flat=True)) == {
        "pending",
        "running",
    }
    assert reported(AIJob.objects.filter(tenant="globex")) == {
        "finished": 1,
        "failed": 0,
        "by_code": {},
    }


@pytest.mark.django_db
def test_a_restart_takes_a_tallied_job_out_of_the_tally():
    job = make_job("failed", "timeout")
    make_job("succeeded")
    tally.catch_up()
    assert transitions.restart(job)
    assert tallied() == {("acme", "succeeded", ""): 1}
    assert not AIJob.objects.get(pk=job.pk).tallied
    assert reported() == by_hand() == {"finished": 1, "failed": 0, "by_code": {}}
    assert not transitions.restart(job)  # pending now: not restartable, nothing moves
    assert tallied() == {("acme", "succeeded", ""): 1}


@pytest.mark.django_db
def test_reviews_move_a_tallied_proposal_to_its_new_status():
    accepted, rejected, superseded = (make_job("in_review") for _ in range(3))
    tally.catch_up()
    assert tallied() == {("acme", "in_review", ""): 3}
    assert transitions.accept(accepted, reviewer="ann")
    assert transitions.reject(rejected, reviewer="ann", reason="no")
    assert transitions.supersede_proposals(AIJob.objects.filter(pk=superseded.pk), "changed")
    assert reported() == by_hand()  # the moved ones are read from the job table
    assert tallied() == {}
    tally.catch_up()
    assert tallied() == {
        ("acme", "succeeded", ""): 1,
        ("acme", "cancelled", ""): 1,
        ("acme", "superseded", ""): 1,
    }
    assert reported() == by_hand()


@pytest.mark.django_db
def test_the_sweep_tallies_and_the_window_reads_the_tally_only():
    from django_ai_fields.jobs.sweep import sweep

    for n in range(6):
        make_job("failed" if n % 3 == 0 else "succeeded", "auth" if n % 3 == 0 else "")
    sweep()
    assert sum(tallied().values()) == 6
    today = timezone.localdate()
    start = timezone.make_aware(datetime.datetime.combine(today, datetime.time.min))
    window = AIJob.objects.filter(
        created_at__gte=start, created_at__lt=start + datetime.timedelta(days=1)
    )
    expected = by_hand()
    with CaptureQueriesContext(connection) as queries:
        assert reported(window) == expected
    (statement,) = [q["sql"] for q in queries.captured_queries]
    for part in statement.split("UNION ALL"):
        if f"FROM {JOB_TABLE}" in part:
            # only the jobs not tallied yet, by index
            assert "." + connection.ops.quote_name("tallied") in part
        else:
            assert "FROM " + connection.ops.quote_name("django_ai_fields_aijobdaily") in part


@NEEDS_DDL_ROLLBACK
@pytest.mark.django_db(transaction=True)
def test_the_migration_tallies_the_finished_jobs_already_there():
    executor = MigrationExecutor(connection)
    before = [("django_ai_fields", "0013_latency_histogram")]
    executor.migrate(before)
    old_job = executor.loader.project_state(before).apps.get_model("django_ai_fields", "AIJob")
    for n, status in enumerate(["succeeded", "failed", "pending", "running", "failed"]):
        old_job.objects.create(
            status=status, error_code="timeout" if n == 1 else "", tenant=f"t{n % 2}", function="f"
        )
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    assert tallied() == {
        ("t0", "succeeded", ""): 1,
        ("t1", "failed", "timeout"): 1,
        ("t0", "failed", ""): 1,
    }
    assert set(AIJob.objects.filter(tallied=False).values_list("status", flat=True)) == {
        "pending",
        "running",
    }
    assert reported() == by_hand()
    job = AIJob.objects.get(status="running")
    AIJob.objects.filter(pk=job.pk).update(status="failed")  # as a worker finishing it would
    assert reported() == by_hand()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers")
@pytest.mark.django_db(transaction=True)
def test_concurrent_catch_ups_and_restarts_keep_the_tally_exact():
    import threading

    AIJob.objects.bulk_create(
        AIJob(status="failed", error_code="timeout", function="f", input_hash=str(n))
        for n in range(200)
    )
    restarted = list(AIJob.objects.order_by("pk")[:60])

    def sweep() -> None:
        try:
            tally.catch_up(batch=40)
        except RuntimeError:
            pass  # lost a race: counted nothing, another catch-up moves the jobs
        finally:
            connection.close()

    def restart() -> None:
        try:
            for job in restarted:
                transitions.restart(job)
        finally:
            connection.close()

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    threads.append(threading.Thread(target=restart))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    tally.catch_up()
    assert tallied() == {("", "failed", "timeout"): 140}
    assert reported() == by_hand() == {"finished": 140, "failed": 140, "by_code": {"timeout": 140}}
