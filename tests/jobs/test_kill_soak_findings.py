"""Issue #24: what the kill soak (benchmarks/soak.py) found, each at its exact point.

A run is held at its provider call by driving its pipeline by hand: ``next()`` on
``job_pipeline`` returns the ProviderCall about to be made, after everything the
run commits before the request leaves. A run that is never resumed is a run whose
work horse died there; RQ's failure of its task is recorded through RQ's own path.
"""

from __future__ import annotations

import contextlib
import io
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from django_ai_fields.calling.pipeline import Pipeline, ProviderCall, drive
from django_ai_fields.dispatch import transitions
from django_ai_fields.jobs.engine import job_pipeline, leased_job_pipeline
from django_ai_fields.jobs.lifecycle import lease
from django_ai_fields.models import (
    AIJob,
    AIUsage,
    AIUsageDaily,
    CallState,
    ErrorCode,
    Quota,
    Status,
)
from django_ai_fields.money import quotas, usage_rollup
from django_ai_fields.providers import ProviderError
from tests.jobs.test_recovery_faults import fail_rq_job_as_rq_does, requeue
from tests.reliability_support import configure, fresh, job_for, max_tokens_of
from tests.testapp.models import Lead

pytestmark = pytest.mark.django_db(transaction=True)


def held_at_call(job: AIJob) -> tuple[Pipeline[str], ProviderCall]:
    """The job's run, stopped where its request is about to leave."""
    pipeline = job_pipeline(job.pk)
    return pipeline, next(pipeline)


def work_horse_killed(job: AIJob, rq_id: str) -> None:
    """The run's work horse died; its worker told RQ (the run is never resumed)."""
    fail_rq_job_as_rq_does(rq_id, "Work-horse terminated unexpectedly; waitpid returned 9")


def heat_calls(fake_provider: Any) -> int:
    """Calls for ``heat`` (a notes change also asks for ``summary`` and ``profile``)."""
    return sum("Classify this lead" in str(r.body) for r in fake_provider.provider_requests)


def change_notes(lead: Lead, notes: str) -> AIJob:
    """A save in its own transaction changing the trigger of ``heat``; its job."""
    with transaction.atomic():
        lead.notes = notes
        lead.save()
    return AIJob.objects.filter(field_name="heat").latest("pk")


# --------------------------------------------------------------------- 1. every call billed


def test_a_call_is_logged_sent_at_its_worst_case_before_it_leaves(fake_provider):
    _lead, job = job_for("heat")
    _run, call = held_at_call(job)
    (usage,) = AIUsage.objects.filter(job=job)
    assert usage.call_state == CallState.SENT and not usage.success
    assert usage.output_tokens == call.prepared.request.max_tokens
    assert usage.input_tokens >= len(call.prepared.request.prompt)
    assert usage.cost_usd > 0  # the worst case at the model's price
    assert heat_calls(fake_provider) == 0  # logged before the request left


def test_a_call_whose_worker_died_stays_counted_and_its_reservation_spent(
    fake_provider, worker
):
    Quota.objects.create(tenant="", kind="requests", period="day", limit=10)
    fake_provider.reply_text = "hot"
    lead, job = job_for("heat")
    rq_id = fresh(job).rq_job_id
    _run, _call = held_at_call(job)
    work_horse_killed(job, rq_id)
    assert quotas.usage_for("", "requests", "day") == 1

    assert "1 lost job(s) requeued" in requeue()
    assert quotas.usage_for("", "requests", "day") == 1  # not released: the call left
    worker.drain()
    assert fresh(job).status == Status.SUCCEEDED
    assert quotas.usage_for("", "requests", "day") == 2  # both calls count
    states = list(AIUsage.objects.filter(job=job).order_by("pk").values_list("call_state"))
    assert states == [(CallState.SENT,), (CallState.SETTLED,)]
    lead.refresh_from_db()
    assert lead.heat == "hot"
    out = io.StringIO()
    call_command("ai_usage", stdout=out)
    assert "No answer: 1 call(s)" in out.getvalue()


def test_the_roll_up_counts_a_settled_call_once_even_if_caught_up_while_sent(fake_provider):
    fake_provider.reply_text = "warm"
    _lead, job = job_for("heat")
    run, call = held_at_call(job)
    usage_rollup.catch_up()  # the sweep rolls the sent row up, at its worst case
    assert daily("calls") == 1 and daily("output_tokens") == call.prepared.request.max_tokens
    with contextlib.suppress(StopIteration):
        run.send(call.run())  # the answer comes back: the same row settled
    (usage,) = AIUsage.objects.filter(job=job)
    assert usage.call_state == CallState.SETTLED and usage.success
    assert rolled_up_equals_the_log()
    assert daily("calls") == 1


def test_the_roll_up_counts_a_call_settled_before_any_catch_up_once(fake_provider):
    fake_provider.reply_text = "cold"
    _lead, job = job_for("heat")
    assert drive(job_pipeline(job.pk)) == Status.SUCCEEDED
    usage_rollup.catch_up()
    assert rolled_up_equals_the_log() and daily("calls") == 1


def daily(counter: str) -> int:
    return int(AIUsageDaily.objects.aggregate(total=Sum(counter))["total"] or 0)


def rolled_up_equals_the_log() -> bool:
    columns = ("input_tokens", "output_tokens")
    log = AIUsage.objects.aggregate(**{name: Sum(name) for name in columns})
    return all(daily(name) == log[name] for name in columns) and daily(
        "calls"
    ) == AIUsage.objects.count()


# ------------------------------------------------------------ 2. a lost job redoes no newer work


def test_a_lost_job_whose_row_has_a_newer_finished_job_is_superseded_without_a_call(
    fake_provider, worker
):
    fake_provider.reply_text = "hot"
    lead, old = job_for("heat")
    _run, _call = held_at_call(old)  # its work horse dies here (never resumed)
    newer = change_notes(lead, "Wants 40 seats")
    worker.drain()
    assert fresh(newer).status == Status.SUCCEEDED and heat_calls(fake_provider) == 1

    AIJob.objects.filter(pk=old.pk).update(started_at=timezone.now() - timedelta(hours=1))
    assert "1 lost job(s) requeued" not in requeue()  # lost: older than JOB_TIMEOUT
    worker.drain()
    assert fresh(old).status == Status.SUPERSEDED
    assert heat_calls(fake_provider) == 1  # the lost job did not call again, nor write


def test_a_lost_job_whose_row_has_a_newer_open_job_is_superseded_not_an_integrity_error(
    fake_provider, worker, settings
):
    configure(settings, PENDING_GRACE=0)  # the newer job's dead drain is replaced at once
    fake_provider.reply_text = "hot"
    lead, old = job_for("heat")
    rq_id = fresh(old).rq_job_id
    _run, _call = held_at_call(old)
    work_horse_killed(old, rq_id)
    newer = change_notes(lead, "Wants 40 seats")
    assert fresh(newer).status in (Status.PENDING, Status.QUEUED)

    requeue()  # back to pending would break the one-open-job constraint
    assert fresh(old).status == Status.SUPERSEDED
    worker.drain()
    assert fresh(newer).status == Status.SUCCEEDED and heat_calls(fake_provider) == 1


def test_a_lost_job_going_pending_races_a_newer_open_job_and_ends_superseded(fake_provider):
    lead, old = job_for("heat")
    leased = lease(old.pk)
    assert leased is not None
    newer = change_notes(lead, "Wants 40 seats")
    guarded = AIJob.objects.filter(pk=old.pk, status=Status.RUNNING)
    # The newer job is not seen (newer=None): the UPDATE to pending meets the constraint.
    outcome = transitions.recover_lost(
        leased, guarded, exhausted=False, error_code="internal", error="lost"
    )
    assert outcome == Status.SUPERSEDED
    assert fresh(newer).status in (Status.PENDING, Status.QUEUED)


# ------------------------------------------------------------ 3. one call per input, no kill


def test_a_running_job_whose_row_changed_and_has_a_newer_job_ends_superseded_before_the_call(
    fake_provider, worker
):
    fake_provider.reply_text = "warm"
    lead, first = job_for("heat")
    leased = lease(first.pk)  # running: a save no longer merges into it
    assert leased is not None
    second = change_notes(lead, "Wants 40 seats")
    assert second.pk != first.pk

    assert drive(leased_job_pipeline(leased)) == Status.SUPERSEDED
    assert heat_calls(fake_provider) == 0
    worker.drain()
    assert fresh(second).status == Status.SUCCEEDED
    assert heat_calls(fake_provider) == 1  # one call for the new notes, not two
    lead.refresh_from_db()
    assert lead.heat == "warm"


def test_a_running_job_whose_row_changed_without_a_newer_job_still_calls(fake_provider):
    fake_provider.reply_text = "cold"
    lead, job = job_for("heat")
    leased = lease(job.pk)
    assert leased is not None
    Lead.objects.filter(pk=lead.pk).update(notes="Changed without signals")  # no new job
    assert drive(leased_job_pipeline(leased)) == Status.SUCCEEDED
    assert heat_calls(fake_provider) == 1
    assert "Changed without signals" in str(fake_provider.requests[-1].body)
    assert max_tokens_of(fake_provider.requests[-1]) > 0


def test_a_retry_while_a_newer_job_is_open_ends_superseded_not_an_integrity_error(
    fake_provider, worker
):
    fake_provider.reply_text = "warm"
    lead, first = job_for("heat")
    run, _call = held_at_call(first)
    second = change_notes(lead, "Wants 40 seats")  # opened while the call is in flight
    unavailable = ProviderError(ErrorCode.PROVIDER_UNAVAILABLE, "HTTP 500")
    with pytest.raises(StopIteration) as ended:
        run.throw(unavailable)  # retryable: back to the queue would be a second open job
    assert ended.value.value == Status.SUPERSEDED
    assert fresh(first).status == Status.SUPERSEDED
    worker.drain()
    assert fresh(second).status == Status.SUCCEEDED and heat_calls(fake_provider) == 1


# ------------------------------------------------------------ coalescing against a lease


def test_a_save_outside_a_transaction_coalescing_into_a_job_leased_at_once_is_safe(
    fake_provider,
):
    lead, job = job_for("heat")
    leased_after_update = LeaseRightAfterTheCoalescingUpdate(job)
    with connection.execute_wrapper(leased_after_update):
        lead.notes = "Wants 40 seats"
        lead.save()  # autocommit: the UPDATE commits at once, the lease follows it
    assert leased_after_update.done
    assert fresh(job).status == Status.RUNNING
    assert AIJob.objects.filter(field_name="heat").count() == 1


class LeaseRightAfterTheCoalescingUpdate:
    """An execute wrapper: a worker leases ``job`` just after the save's UPDATE of it."""

    def __init__(self, job: AIJob) -> None:
        self.job, self.done = job, False

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        result = execute(sql, params, many, context)
        coalescing = sql.startswith('UPDATE "django_ai_fields_aijob"') and "heat" in map(
            str, params or ()
        )
        if coalescing and not self.done:
            self.done = True
            assert lease(self.job.pk) is not None
        return result
