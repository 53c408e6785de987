"""Issue #7 item 1: AI functions beyond fields, run by the same engine."""

from __future__ import annotations

import json

import pytest

from django_ai_fields import signals
from django_ai_fields.api import run_ai_task
from django_ai_fields.functions import AIFunction, get_function, register, registered
from django_ai_fields.models import AIJob, AIUsage, Quota
from tests.testapp.models import PlainLead

pytestmark = pytest.mark.django_db(transaction=True)


def answer(fake_provider, value):
    fake_provider.responder = lambda request: json.dumps(value)


def test_function_creates_a_row_from_structured_output(fake_provider, worker):
    answer(fake_provider, {"name": "Ada Lovelace", "company": "Analytical Engines"})
    completed = []

    def on_completed(sender, job, **kwargs):
        completed.append(job.pk)

    signals.job_completed.connect(on_completed)
    try:
        job = run_ai_task(
            "extract_lead", {"description": "Ada from Analytical Engines"}, tenant="acme"
        )
        assert job.status == "pending" and job.function == "extract_lead"
        worker.drain()
    finally:
        signals.job_completed.disconnect(on_completed)
    job.refresh_from_db()
    assert (job.status, job.phase, job.progress) == ("succeeded", "DONE", 100)
    assert job.output == {"name": "Ada Lovelace", "company": "Analytical Engines"}
    lead = PlainLead.objects.get()
    assert (lead.name, lead.company) == ("Ada Lovelace", "Analytical Engines")
    usage = AIUsage.objects.get()
    assert (usage.tenant, usage.job_id, usage.success) == ("acme", job.pk, True)
    if not worker.real:  # receivers in this process see signals of in-process workers only
        assert completed == [job.pk]
    (request,) = fake_provider.provider_requests
    assert request.body["response_format"]["type"] == "json_schema"
    assert (
        '<data field="description">Ada from Analytical Engines</data>'
        in (request.body["messages"][-1]["content"])
    )


def test_function_output_is_validated_by_its_schema(fake_provider, worker):
    answer(fake_provider, {"name": "No company"})
    job = run_ai_task("extract_lead", {"description": "x"})
    worker.drain()
    job.refresh_from_db()
    assert (job.status, job.error_code, job.phase) == ("failed", "invalid_output", "PARSE")
    assert "company" in job.error
    assert PlainLead.objects.count() == 0


def test_functions_obey_quotas(fake_provider, worker):
    Quota.objects.create(tenant="", kind="requests", period="day", limit=0)
    job = run_ai_task("extract_lead", {"description": "x"}, tenant="acme")
    worker.drain()
    job.refresh_from_db()
    assert (job.status, job.error_code) == ("failed", "quota_exceeded")
    assert fake_provider.calls == 0


def test_prepare_can_refuse_or_cancel(fake_provider, worker):
    refused = run_ai_task("extract_lead", {"description": ""})
    cancelled = run_ai_task("extract_lead", {"description": "x", "skip": True})
    worker.drain()
    refused.refresh_from_db()
    cancelled.refresh_from_db()
    assert (refused.status, refused.error_code) == ("failed", "bad_request")
    assert "description is required" in refused.error
    assert (cancelled.status, cancelled.error) == ("cancelled", "Nothing to extract.")
    assert fake_provider.calls == 0


def test_max_items_is_enforced_by_validate(fake_provider, worker):
    fake_provider.reply_text = "fruit"
    small = run_ai_task("tag_many", ["apple", "pear"])
    large = run_ai_task("tag_many", ["a", "b", "c", "d"])
    worker.drain()
    small.refresh_from_db()
    large.refresh_from_db()
    assert (small.status, small.output) == ("succeeded", "fruit")
    assert (large.status, large.error_code) == ("failed", "bad_request")
    assert fake_provider.calls == 1


def test_function_jobs_retry_like_field_jobs(fake_provider, worker):
    fake_provider.enqueue_fault(status=503)
    fake_provider.reply_text = "fruit"
    job = run_ai_task("tag_many", ["apple"])
    worker.drain()
    job.refresh_from_db()
    assert (job.status, job.attempts, fake_provider.calls) == ("succeeded", 2, 2)
    assert AIUsage.objects.filter(job=job).count() == 2


def test_sync_run_and_unknown_names(fake_provider):
    fake_provider.reply_text = "fruit"
    job = run_ai_task("tag_many", ["apple"], sync=True)
    assert (job.status, job.output) == ("succeeded", "fruit")
    with pytest.raises(LookupError):
        run_ai_task("no_such_function", {})
    assert AIJob.objects.count() == 1


def test_registry_refuses_a_second_function_with_the_same_name():
    assert get_function("extract_lead").__name__ == "ExtractLead"
    assert {"extract_lead", "tag_many"} <= set(registered())

    class Impostor(AIFunction):
        name = "extract_lead"

    with pytest.raises(ValueError, match="taken"):
        register(Impostor)

    class Nameless(AIFunction):
        pass

    with pytest.raises(ValueError, match="needs a name"):
        register(Nameless)
