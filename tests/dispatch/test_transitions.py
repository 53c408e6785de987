"""Issue 22: one module writes AIJob.status and one puts tasks on the queue; every
transition logs, counts and signals, whoever makes it (a user's cancel, a hand
edit, the sweep, a queue outage included)."""

from __future__ import annotations

import ast
import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings
from django.utils import timezone
from prometheus_client import REGISTRY

import django_ai_fields
from django_ai_fields import signals
from django_ai_fields.jobs import actions, sweep
from django_ai_fields.models import AIJob, ErrorCode, Status
from tests.intake.test_outbox import REDIS_DOWN
from tests.testapp.models import Lead

pytestmark = pytest.mark.django_db(transaction=True)

PACKAGE = Path(django_ai_fields.__file__).parent
STATUS_WRITER = PACKAGE / "dispatch" / "transitions.py"
# The task backends (RQ, Celery, django.tasks), called only through dispatch/backend.py.
TASK_SENDERS = PACKAGE / "dispatch" / "backends"
WRITES = {"update", "create", "bulk_create", "get_or_create", "update_or_create", "AIJob"}
ENQUEUES = {
    "enqueue",
    "enqueue_in",
    "enqueue_at",
    "enqueue_call",
    "enqueue_many",
    "send_task",
    "apply_async",
}


def modules() -> Iterator[tuple[Path, ast.AST]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        if "migrations" not in path.parts:
            yield path, ast.parse(path.read_text(encoding="utf-8"))


def called_name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def test_only_the_transitions_module_writes_a_job_status():
    offenders = [
        f"{path.relative_to(PACKAGE)}:{node.lineno}"
        for path, tree in modules()
        if path != STATUS_WRITER
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and called_name(node) in WRITES
        and any(keyword.arg == "status" for keyword in node.keywords)
    ]
    assert offenders == []


def test_only_the_backend_puts_tasks_on_the_queue():
    offenders = [
        f"{path.relative_to(PACKAGE)}:{node.lineno}"
        for path, tree in modules()
        if TASK_SENDERS not in path.parents
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and called_name(node) in ENQUEUES
    ]
    assert offenders == []


# -- every transition is observable ---------------------------------------------------


def status_records(caplog: pytest.LogCaptureFixture, job: AIJob) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if getattr(r, "event", "") == "ai_job" and getattr(r, "job_id", None) == job.pk
    ]


def transitions_count(status: str) -> float:
    labels = {"status": status}
    return REGISTRY.get_sample_value("django_ai_fields_job_transitions_total", labels) or 0


def finished_count(status: str, error_code: str = "") -> float:
    labels = {"status": status, "error_code": error_code}
    return REGISTRY.get_sample_value("django_ai_fields_jobs_finished_total", labels) or 0


@pytest.fixture
def failed_signals() -> Iterator[list[dict[str, Any]]]:
    received: list[dict[str, Any]] = []

    def receiver(**kwargs: Any) -> None:
        received.append(kwargs)

    signals.job_failed.connect(receiver, dispatch_uid="test_transitions")
    yield received
    signals.job_failed.disconnect(dispatch_uid="test_transitions")


def summary_job(lead: Lead) -> AIJob:
    return AIJob.objects.get(object_id=str(lead.pk), field_name="summary")


def test_a_users_cancel_logs_and_counts(fake_provider, caplog):
    caplog.set_level(logging.INFO, logger="django_ai_fields")
    job = summary_job(Lead.objects.create(name="Ada", company="Acme"))
    before = transitions_count("cancelled"), finished_count("cancelled")

    assert actions.cancel(job) == ""

    [record] = [r for r in status_records(caplog, job) if r.status == Status.CANCELLED]
    assert record.error == "Cancelled by a user."
    assert (transitions_count("cancelled"), finished_count("cancelled")) == (
        before[0] + 1,
        before[1] + 1,
    )


def test_a_hand_edit_logs_the_cancel_of_the_open_job(fake_provider, caplog):
    caplog.set_level(logging.INFO, logger="django_ai_fields")
    lead = Lead.objects.create(name="Ada", company="Acme")
    job = summary_job(lead)
    lead.summary = "Typed in by a person."
    lead.save()

    job.refresh_from_db()
    assert job.status == Status.CANCELLED
    [record] = [r for r in status_records(caplog, job) if r.status == Status.CANCELLED]
    assert "edited by hand" in record.error


def test_the_sweep_failing_a_lost_job_logs_counts_and_signals(
    fake_provider, caplog, failed_signals, settings
):
    caplog.set_level(logging.INFO, logger="django_ai_fields")
    job = summary_job(Lead.objects.create(name="Ada", company="Acme"))
    long_ago = timezone.now() - timedelta(hours=1)
    AIJob.objects.filter(pk=job.pk).update(
        status=Status.RUNNING,
        run_token="a-dead-run",
        started_at=long_ago,
        attempts=settings.AI_FIELDS.get("MAX_ATTEMPTS", 3),
    )
    before = finished_count("failed", ErrorCode.TIMEOUT)

    report = sweep.sweep()

    assert report.failed == 1
    [record] = [r for r in status_records(caplog, job) if r.status == Status.FAILED]
    assert record.levelno == logging.WARNING
    assert record.error_code == ErrorCode.TIMEOUT
    assert [(s["job"].pk, s["error_code"]) for s in failed_signals] == [
        (job.pk, ErrorCode.TIMEOUT)
    ]
    assert finished_count("failed", ErrorCode.TIMEOUT) == before + 1


def test_a_queue_outage_at_commit_logs_why_jobs_stay_pending(fake_provider, caplog):
    caplog.set_level(logging.INFO, logger="django_ai_fields")
    with override_settings(RQ_QUEUES=REDIS_DOWN):
        lead = Lead.objects.create(name="Ada", company="Acme")

    job = summary_job(lead)
    assert job.status == Status.PENDING
    [record] = [
        r
        for r in caplog.records
        if getattr(r, "event", "") == "ai_jobs" and job.pk in getattr(r, "job_ids", [])
    ]
    assert (record.levelno, record.status) == (logging.WARNING, Status.PENDING)
    assert "the task queue is unreachable" in record.reason
