"""Issue 22: one call's cost is computed once and booked in one place
(calling.pipeline.book): its usage row, the quota settled, the job charged; a call
that outlives its run's lease is still booked, and counted in full."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from django_ai_fields.conf import get_setting
from django_ai_fields.jobs.sweep import sweep
from django_ai_fields.jobs.tasks import run_job
from django_ai_fields.models import AIJob, AIUsage, Quota
from django_ai_fields.money import quotas
from tests.calling.test_streaming import in_background, wait_for
from tests.fake_provider import Usage
from tests.testapp.models import Lead

pytestmark = pytest.mark.django_db(transaction=True)


def summary_job() -> AIJob:
    lead = Lead.objects.create(name="Ada", company="Acme")
    AIJob.objects.exclude(field_name="summary").delete()
    return AIJob.objects.get(object_id=str(lead.pk))


def test_the_job_usage_row_and_quota_agree_on_one_bill(fake_provider, worker):
    fake_provider.usage = Usage(input_tokens=1000, output_tokens=500)
    Quota.objects.create(tenant="", kind="cost_usd", period="month", limit=Decimal("1"))
    job = summary_job()
    worker.drain()

    job.refresh_from_db()
    usage = AIUsage.objects.get(job=job)
    assert usage.cost_usd == job.cost_usd == Decimal("0.000450")  # 1000 x 0.15 + 500 x 0.60
    assert (job.input_tokens, job.output_tokens) == (1000, 500)
    assert quotas.usage_for(job.tenant, "cost_usd", "month") == 450  # micro-dollars, settled


def test_a_call_that_outlives_its_lease_is_booked_and_counted_in_full(fake_provider):
    fake_provider.usage = Usage(input_tokens=40, output_tokens=10)
    fake_provider.delay = 1.0
    Quota.objects.create(tenant="", kind="requests", period="day", limit=100)
    Quota.objects.create(tenant="", kind="tokens", period="day", limit=1_000_000)
    job = summary_job()
    results: list[str] = []
    background = in_background(lambda: results.append(run_job(job.pk)))
    wait_for(lambda: fake_provider.calls == 1)  # the call is in flight
    # The sweep takes the job as lost (as if its worker had died) and puts the job
    # back; the run's reservations are its own (the call had left): it settles them.
    later = timezone.now() + timedelta(seconds=get_setting("JOB_TIMEOUT") + 1)
    assert sweep(now=later).recovered == 1
    background.join(timeout=60)

    assert results == ["lease-lost"]
    job.refresh_from_db()
    assert AIUsage.objects.filter(job=job, success=True).count() == 1  # the provider billed it
    assert quotas.usage_for(job.tenant, "requests", "day") == 1
    assert quotas.usage_for(job.tenant, "tokens", "day") == 50
