"""Issue #7 items 2 and 5: the step log, and provider options passed to the SDK."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from django_ai_fields.models import AIJob
from tests.testapp.models import Lead, Memo

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_successful_job_logs_each_phase_with_tokens_and_cost(fake_provider, worker):
    fake_provider.reply_text = "hot"
    lead = Lead.objects.create(name="Ada", notes="Wants 20 seats")
    AIJob.objects.exclude(field_name="heat").delete()
    worker.drain()
    job = AIJob.objects.get(field_name="heat")
    phases = [step["phase"] for step in job.steps]
    assert phases == ["INIT", "PREP", "AI_CALL", "PARSE", "DONE"]
    assert all(step["attempt"] == 1 and step["at"] for step in job.steps)
    assert job.steps[2]["message"] == "Calling openai (gpt-4o-mini)"
    answered = job.steps[3]  # the call is booked (and charged) as its answer arrives
    assert (answered["input_tokens"], answered["output_tokens"]) == (11, 7)
    assert answered["cost_usd"] == "0.000006"  # 11 x 0.15 + 7 x 0.60 = 5.85 micro-dollars
    assert (job.input_tokens, job.output_tokens, str(job.cost_usd)) == (11, 7, "0.000006")
    assert lead.pk


def test_retries_and_failures_are_in_the_log(fake_provider, worker):
    fake_provider.enqueue_fault(status=503)
    fake_provider.reply_text = "nonsense"
    Lead.objects.create(name="Ada", notes="x")
    AIJob.objects.exclude(field_name="heat").delete()
    worker.drain()
    job = AIJob.objects.get()
    messages = [(step["attempt"], step["phase"], step["message"]) for step in job.steps]
    assert messages[2] == (1, "AI_CALL", "Calling openai (gpt-4o-mini)")
    assert messages[3][0] == 1 and messages[3][2].startswith("Waiting to try again: HTTP 503")
    assert messages[4] == (2, "INIT", "Attempt 2 started")
    assert messages[-1][1] == "PARSE"
    assert messages[-1][2].startswith("Failed: 'nonsense' is not one of the allowed choices")


def test_json_job_detail_and_admin_show_the_steps(fake_provider, worker):
    fake_provider.reply_text = "hot"
    Lead.objects.create(name="Ada", notes="x")
    AIJob.objects.exclude(field_name="heat").delete()
    worker.drain()
    job = AIJob.objects.get()
    admin_user = User.objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(admin_user)
    detail = client.get(f"/ai/jobs/{job.pk}/").json()
    phases = [step["phase"] for step in detail["steps"]]
    assert phases == ["INIT", "PREP", "AI_CALL", "PARSE", "DONE"]
    page = client.get(f"/admin/django_ai_fields/aijob/{job.pk}/change/").content.decode()
    assert "Calling openai (gpt-4o-mini)" in page


def test_provider_options_reach_the_sdk_call(fake_provider, worker):
    Memo.objects.create(title="Q3")  # Memo.text: provider_options={"seed": 7, ...}
    worker.drain()
    (request,) = fake_provider.provider_requests
    assert (request.body["seed"], request.body["reasoning_effort"]) == (7, "low")
