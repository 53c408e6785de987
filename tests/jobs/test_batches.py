"""Provider batch APIs (``ai_regenerate --batch``): submitted through the real SDKs to
the fake provider's batch endpoints, polled, written back at batch prices."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rq.job import Job

from django_ai_fields.jobs import batches
from django_ai_fields.jobs.actions import cancel
from django_ai_fields.jobs.sweep import sweep
from django_ai_fields.jobs.tasks import run_job
from django_ai_fields.models import AIJob, AIUsage, ErrorCode, Phase, Quota, Status
from django_ai_fields.money.pricing import ceil_micro, cost_micro, micro_to_usd
from django_ai_fields.money.quotas import usage_for
from django_ai_fields.queues import get_queue
from tests.fake_batches import multipart_form
from tests.fake_provider import FakeProvider, Usage
from tests.reliability_support import configure, make_lead
from tests.testapp.models import Lead

pytestmark = pytest.mark.django_db(transaction=True)

OPENAI_MODEL = "gpt-4o-mini"
ANTHROPIC_MODEL = "claude-haiku-4-5"


def regenerate_in_batch(*args: str) -> str:
    out = io.StringIO()
    call_command("ai_regenerate", "testapp.Lead", "--batch", *args, stdout=out)
    return out.getvalue()


def refused(*args: str) -> str:
    with pytest.raises(CommandError) as caught:
        regenerate_in_batch(*args)
    return str(caught.value)


def batch_jobs() -> list[AIJob]:
    return list(AIJob.objects.order_by("pk"))


def uploaded_lines(fp: FakeProvider) -> list[dict[str, Any]]:
    """The request lines of the JSONL file uploaded to POST /v1/files."""
    (upload,) = [r for r in fp.requests if r.path == "/v1/files"]
    form = multipart_form(upload.headers["content-type"], upload.raw)
    assert form["purpose"] == b"batch"
    return [json.loads(line) for line in form["file"].splitlines()]


def batch_price(model: str, **tokens: int) -> Decimal:
    return micro_to_usd(cost_micro(model, batch=True, **tokens))


def run_scheduled_poll(worker: Any) -> None:
    """Run the poll the RQ scheduler holds, now, in a real worker."""
    queue = get_queue()
    registry = queue.scheduled_job_registry
    (rq_id,) = registry.get_job_ids()
    job = Job.fetch(rq_id, connection=queue.connection)
    assert job.func_name == "django_ai_fields.jobs.tasks.periodic_poll"
    registry.remove(job)
    queue.enqueue_job(job)
    worker.drain()


# -- end to end ---------------------------------------------------------------------------


def test_openai_batch_from_the_command_to_the_rows_at_half_price(fake_provider, worker):
    leads = [make_lead(name=f"Lead {i}") for i in range(3)]

    out = regenerate_in_batch("--field", "summary")

    jobs = batch_jobs()
    (batch_id,) = {job.batch_id for job in jobs}
    assert f"Sent 3 AI job(s) in 1 provider batch(es): {batch_id}" in out
    assert [(j.status, j.phase, j.attempts) for j in jobs] == [("queued", Phase.BATCH, 0)] * 3
    assert fake_provider.calls == 0  # nothing answered yet
    lines = uploaded_lines(fake_provider)
    assert [line["custom_id"] for line in lines] == [str(job.pk) for job in jobs]
    assert {line["url"] for line in lines} == {"/v1/chat/completions"}
    assert "Lead 1" in lines[1]["body"]["messages"][1]["content"]
    assert run_job(jobs[0].pk) == "skipped"  # a stray RQ job leaves a batch job alone

    run_scheduled_poll(worker)

    assert fake_provider.calls == 3  # each line answered like a chat completion
    assert [lead.summary for lead in Lead.objects.order_by("pk")] == [
        "fake reply #1",
        "fake reply #2",
        "fake reply #3",
    ]
    price = batch_price(OPENAI_MODEL, input_tokens=11, output_tokens=7)
    assert price == micro_to_usd(cost_micro(OPENAI_MODEL, input_tokens=11, output_tokens=7) / 2)
    for job in batch_jobs():
        assert (job.status, job.batch_id, job.attempts) == (Status.SUCCEEDED, "", 1)
        assert (job.input_tokens, job.output_tokens, job.cost_usd) == (11, 7, price)
    usages = AIUsage.objects.all()
    assert [(u.provider, u.model, u.success, u.cost_usd) for u in usages] == [
        ("openai", OPENAI_MODEL, True, price)
    ] * 3
    assert {lead.pk for lead in leads} == set(Lead.objects.values_list("pk", flat=True))
    assert get_queue().scheduled_job_registry.get_job_ids() == []  # no batch left to poll


def test_anthropic_batch_waits_until_it_ended(fake_provider, settings):
    configure(settings, DEFAULT_PROVIDER="anthropic")
    fake_provider.batch_api.polls_to_end = 2
    fake_provider.reply_text = '{"industry": "Software", "employees": 12}'
    fake_provider.usage = Usage(input_tokens=100, output_tokens=20, cached_tokens=40)
    lead = make_lead()

    regenerate_in_batch("--field", "profile")
    (job,) = batch_jobs()
    (create,) = [r for r in fake_provider.requests if r.path == "/v1/messages/batches"]
    (request,) = create.body["requests"]
    assert request["custom_id"] == str(job.pk)
    assert request["params"]["tool_choice"] == {"type": "tool", "name": "record_output"}
    assert request["params"]["system"][0]["cache_control"] == {"type": "ephemeral"}

    assert str(batches.poll()) == "1 provider batch(es) still running, 0 ended"
    job.refresh_from_db()
    assert (job.status, job.phase, fake_provider.calls) == (Status.QUEUED, Phase.BATCH, 0)

    assert str(batches.poll()) == "0 provider batch(es) still running, 1 ended (1 succeeded)"
    lead.refresh_from_db()
    assert lead.profile == {"industry": "Software", "employees": 12}
    # Anthropic's input_tokens exclude cache reads: 100 + 40 in all, 40 read from cache.
    price = batch_price(ANTHROPIC_MODEL, input_tokens=140, output_tokens=20, cached_tokens=40)
    (usage,) = AIUsage.objects.all()
    assert (usage.provider, usage.input_tokens, usage.cached_tokens) == ("anthropic", 140, 40)
    assert usage.cost_usd == price
    job.refresh_from_db()
    assert (job.status, job.cost_usd) == (Status.SUCCEEDED, price)


# -- what can happen meanwhile ------------------------------------------------------------


def test_a_row_changed_while_its_batch_runs_gets_a_new_job_and_the_answer_is_superseded(
    fake_provider,
):
    lead = make_lead(name="Ada")
    regenerate_in_batch("--field", "summary")
    (batched,) = batch_jobs()

    lead.name = "Grace"
    lead.save()  # a new job: the batch job does not take the change in
    newer = AIJob.objects.exclude(pk=batched.pk).get(field_name="summary")
    assert newer.phase == Phase.INIT and newer.status in (Status.PENDING, Status.QUEUED)

    batches.poll()

    batched.refresh_from_db()
    assert batched.status == Status.SUPERSEDED
    assert "changed while the batch ran" in batched.error
    lead.refresh_from_db()
    assert lead.summary is None  # the stale answer was not written
    (usage,) = AIUsage.objects.filter(job=batched)  # but it was paid for
    assert (
        usage.cost_usd
        == batched.cost_usd
        == batch_price(OPENAI_MODEL, input_tokens=11, output_tokens=7)
    )


def test_failed_requests_retry_as_normal_jobs_or_fail(fake_provider, worker):
    for name in ("Retry", "Fail", "Fine"):
        make_lead(name=name)
    regenerate_in_batch("--field", "summary")
    fake_provider.enqueue_fault(status=503)  # retryable: back to the normal queue
    fake_provider.enqueue_fault(status=400)  # not retryable: fails

    assert str(batches.poll()).endswith("1 ended (1 failed, 1 queued, 1 succeeded)")

    retry, failed, fine = batch_jobs()
    assert (retry.status, retry.phase, retry.error_code) == (
        Status.QUEUED,
        Phase.INIT,
        ErrorCode.PROVIDER_UNAVAILABLE,
    )
    assert get_queue().job_ids == [retry.rq_job_id]
    assert (failed.status, failed.error_code) == (Status.FAILED, ErrorCode.BAD_REQUEST)
    assert "HTTP 400 in the batch" in failed.error
    assert fine.status == Status.SUCCEEDED
    failures = AIUsage.objects.filter(success=False).order_by("pk")
    assert [(u.job_id, u.error_code) for u in failures] == [
        (retry.pk, ErrorCode.PROVIDER_UNAVAILABLE),
        (failed.pk, ErrorCode.BAD_REQUEST),
    ]

    worker.drain()  # the retry: a normal call at the normal price

    retry.refresh_from_db()
    assert (retry.status, retry.attempts) == (Status.SUCCEEDED, 2)
    normal = micro_to_usd(cost_micro(OPENAI_MODEL, input_tokens=11, output_tokens=7))
    assert AIUsage.objects.filter(job=retry, success=True).get().cost_usd == normal
    assert Lead.objects.get(name="Retry").summary == "fake reply #4"


def test_an_expired_batch_sends_its_jobs_to_the_normal_queue(fake_provider, settings):
    configure(settings, DEFAULT_PROVIDER="anthropic")
    fake_provider.batch_api.outcome = "expired"
    make_lead()
    regenerate_in_batch("--field", "summary")

    batches.poll()

    (job,) = batch_jobs()
    assert (job.status, job.phase, job.error_code) == (Status.QUEUED, Phase.INIT, "timeout")
    assert "ended before the request ran (expired)" in job.error
    assert fake_provider.calls == 0


def test_a_failed_openai_batch_fails_its_jobs(fake_provider):
    fake_provider.batch_api.outcome = "failed"
    make_lead()
    regenerate_in_batch("--field", "summary")

    batches.poll()

    (job,) = batch_jobs()
    assert (job.status, job.error_code) == (Status.FAILED, ErrorCode.BAD_REQUEST)
    assert job.error == "The batch failed: Fake batch failure"


def test_an_invalid_answer_fails_without_a_repair_call(fake_provider):
    fake_provider.reply_text = "lukewarm, I think"
    make_lead()
    regenerate_in_batch("--field", "heat")

    batches.poll()

    (job,) = batch_jobs()
    assert (job.status, job.error_code) == (Status.FAILED, ErrorCode.INVALID_OUTPUT)
    assert job.output == "lukewarm, I think"
    assert fake_provider.calls == 1


def test_quota_is_reserved_at_submit_and_settled_at_batch_prices(fake_provider):
    Quota.objects.create(kind="cost_usd", period="day", limit=Decimal("1"))
    Quota.objects.create(kind="requests", period="day", limit=10)
    make_lead(name="A")
    make_lead(name="B")
    regenerate_in_batch("--field", "summary")

    jobs = batch_jobs()
    reserved = sum(
        units for job in jobs for _row, kind, units in job.reservations if kind == "cost_usd"
    )
    assert reserved > 0
    assert usage_for("", "cost_usd", "day") == reserved  # the worst case, held
    assert usage_for("", "requests", "day") == 2

    batches.poll()

    one = ceil_micro(cost_micro(OPENAI_MODEL, input_tokens=11, output_tokens=7, batch=True))
    assert usage_for("", "cost_usd", "day") == 2 * one
    assert usage_for("", "requests", "day") == 2
    assert all(job.reservations == [] for job in batch_jobs())


def test_a_job_over_quota_is_not_sent(fake_provider):
    Quota.objects.create(kind="requests", period="day", limit=1)
    make_lead(name="A")
    make_lead(name="B")

    out = regenerate_in_batch("--field", "summary")

    assert "Sent 1 AI job(s) in 1 provider batch(es)" in out
    assert "Not sent: 1 failed." in out
    assert len(uploaded_lines(fake_provider)) == 1
    refused_job = AIJob.objects.get(status=Status.FAILED)
    assert refused_job.error_code == ErrorCode.QUOTA_EXCEEDED


def test_a_cancelled_batch_job_frees_its_quota_and_is_still_accounted(fake_provider):
    Quota.objects.create(kind="cost_usd", period="day", limit=Decimal("1"))
    lead = make_lead()
    regenerate_in_batch("--field", "summary")
    (job,) = batch_jobs()

    assert cancel(job) == ""
    assert usage_for("", "cost_usd", "day") == 0

    batches.poll()  # the provider answered (and billed) the request anyway

    job.refresh_from_db()
    assert (job.status, job.batch_id) == (Status.CANCELLED, "")
    lead.refresh_from_db()
    assert lead.summary is None
    (usage,) = AIUsage.objects.all()
    assert usage.cost_usd == batch_price(OPENAI_MODEL, input_tokens=11, output_tokens=7)
    one = ceil_micro(cost_micro(OPENAI_MODEL, input_tokens=11, output_tokens=7, batch=True))
    assert usage_for("", "cost_usd", "day") == one
    assert batches.open_batches() == []


def test_the_sweep_leaves_open_batch_jobs_alone_and_keeps_the_poll_scheduled(
    fake_provider, settings
):
    configure(settings, PENDING_GRACE=0, JOB_TIMEOUT=0)
    make_lead()
    regenerate_in_batch("--field", "summary")
    queue = get_queue()
    queue.connection.flushdb()  # the scheduled poll is lost

    report = sweep(all_pending=True)

    assert (report.enqueued, report.recovered) == (0, 0)
    (job,) = batch_jobs()
    assert (job.status, job.phase) == (Status.QUEUED, Phase.BATCH)
    assert len(queue) == 0
    (rq_id,) = queue.scheduled_job_registry.get_job_ids()
    assert Job.fetch(rq_id, connection=queue.connection).func_name.endswith("periodic_poll")


def test_ai_requeue_collects_ended_batches(fake_provider):
    make_lead()
    regenerate_in_batch("--field", "summary")
    out = io.StringIO()

    call_command("ai_requeue", stdout=out)

    assert "0 provider batch(es) still running, 1 ended (1 succeeded)" in out.getvalue()
    assert Lead.objects.get().summary == "fake reply #1"


def test_a_field_already_in_a_batch_is_not_sent_again(fake_provider):
    make_lead()
    regenerate_in_batch("--field", "summary")

    out = regenerate_in_batch("--field", "summary")

    assert "Not sent: 1 already in a batch." in out
    assert AIJob.objects.count() == 1


# -- the command's refusals ----------------------------------------------------------------


def test_batch_and_sync_do_not_combine(fake_provider):
    make_lead()
    assert "--batch and --sync cannot be combined" in refused("--sync")
    assert not AIJob.objects.exists()


def test_a_provider_without_a_batch_api_is_refused(settings):
    configure(settings, DEFAULT_PROVIDER="offline")
    make_lead()
    message = refused("--field", "summary")
    assert "testapp.Lead.summary uses provider 'offline', which has no batch API" in message
    assert not AIJob.objects.exists()


def test_a_refused_batch_fails_its_jobs_and_frees_their_quota(fake_provider):
    Quota.objects.create(kind="cost_usd", period="day", limit=Decimal("1"))
    fake_provider.batch_api.create_status = 401
    make_lead()

    message = refused("--field", "summary")

    assert "The provider refused a batch" in message and "HTTP 401" in message
    (job,) = batch_jobs()
    assert (job.status, job.error_code, job.batch_id) == (Status.FAILED, ErrorCode.AUTH, "")
    assert job.error.startswith("Sending the provider batch failed: HTTP 401")
    assert usage_for("", "cost_usd", "day") == 0
