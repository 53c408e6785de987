"""Issue #5: retries, the shared circuit breaker, fallbacks, rate limits, idempotency.

Jobs run through the real engine and SDKs against the fake provider; circuit and
rate-limit state lives in the suite's Redis (fakeredis, or a real one with REDIS_URL).
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.test import Client, override_settings
from django.urls import reverse

from django_ai_fields.calling import breaker, ratelimit
from django_ai_fields.jobs.lifecycle import retry_delay
from django_ai_fields.jobs.tasks import run_job
from django_ai_fields.models import AIUsage, ErrorCode, Quota, Status
from django_ai_fields.money.quotas import usage_for
from django_ai_fields.providers import ProviderError
from tests.reliability_support import (
    calls_of,
    configure,
    fresh,
    job_for,
    max_tokens_of,
    scheduled_in,
    set_provider_timeout,
)
from tests.surfaces import make_user
from tests.testapp.models import Lead

pytestmark = pytest.mark.django_db(transaction=True)

OPENAI = ("openai", "gpt-4o-mini")
HAIKU = ("anthropic", "claude-haiku-4-5")
UNAVAILABLE = ProviderError(ErrorCode.PROVIDER_UNAVAILABLE, "HTTP 500")


# --------------------------------------------------------------------------- retry policy


def test_one_attempt_is_one_http_request_sdk_retries_are_off(fake_provider):
    fake_provider.enqueue_fault(status=500)
    _lead, job = job_for("heat")
    assert run_job(job.pk) == Status.QUEUED
    assert fake_provider.calls == 1  # the SDK did not retry on its own
    assert (fresh(job).attempts, fresh(job).error_code) == (1, ErrorCode.PROVIDER_UNAVAILABLE)


def test_backoff_is_full_jitter_capped_and_retry_after_is_a_capped_floor(settings):
    configure(settings, RETRY_BACKOFF=2, RETRY_BACKOFF_MAX=10, RETRY_AFTER_MAX=30)
    delays = [retry_delay(8, None) for _ in range(200)]
    assert all(0 <= d <= 10 for d in delays)  # 2 * 2**8 capped at 10
    assert max(delays) - min(delays) > 1  # jittered, not a fixed sleep
    assert all(retry_delay(1, 20) >= 20 for _ in range(50))  # Retry-After is a floor
    assert all(retry_delay(1, 3600) == 30 for _ in range(50))  # ... capped by RETRY_AFTER_MAX


# --------------------------------------------------------------------------- circuit breaker


def open_circuit(provider: str = "openai", model: str = "gpt-4o-mini", ttl: float = 30) -> None:
    """Record CIRCUIT_FAILURES failures through the breaker itself."""
    from django_ai_fields.conf import get_setting

    for _ in range(int(get_setting("CIRCUIT_FAILURES"))):
        breaker.record(breaker.allow(provider, model, ttl), UNAVAILABLE)
    assert breaker.state_of(provider, model)["state"] == breaker.OPEN


def test_the_circuit_opens_after_n_failures_and_defers_jobs_without_an_attempt(
    fake_provider, settings
):
    configure(settings, CIRCUIT_FAILURES=2, CIRCUIT_COOLDOWN=60)
    fake_provider.enqueue_fault(status=500, times=2)
    jobs = [job_for("heat")[1] for _ in range(3)]
    assert [run_job(job.pk) for job in jobs[:2]] == [Status.QUEUED, Status.QUEUED]
    state = breaker.state_of(*OPENAI)
    assert (state["state"], state["times_opened"]) == (breaker.OPEN, 1)
    assert 55 < state["retry_in"] <= 60

    third = jobs[2]
    assert run_job(third.pk) == Status.QUEUED
    third = fresh(third)
    assert (third.status, third.attempts, third.error_code) == (
        Status.QUEUED,
        0,
        ErrorCode.CIRCUIT_OPEN,
    )
    assert "openai/gpt-4o-mini" in third.error
    assert fake_provider.calls == 2  # the open circuit kept the third call off the wire
    assert calls_of(third) == []
    assert 59 < scheduled_in(third) <= 71  # when the circuit may half-open, plus jitter


def test_only_retryable_failures_count_towards_opening(fake_provider, settings):
    configure(settings, CIRCUIT_FAILURES=2)
    fake_provider.fail_all_with = 401
    for _ in range(3):
        _lead, job = job_for("heat")
        assert run_job(job.pk) == Status.FAILED
    assert breaker.state_of(*OPENAI)["state"] == breaker.CLOSED
    assert fake_provider.calls == 3


def test_a_success_between_failures_resets_the_count(fake_provider, settings):
    configure(settings, CIRCUIT_FAILURES=2)
    fake_provider.reply_text = "hot"
    fake_provider.enqueue_fault(status=500)
    run_job(job_for("heat")[1].pk)  # fails
    run_job(job_for("heat")[1].pk)  # succeeds: the count starts again
    fake_provider.enqueue_fault(status=503)
    run_job(job_for("heat")[1].pk)
    assert breaker.state_of(*OPENAI)["state"] == breaker.CLOSED
    fake_provider.enqueue_fault(status=503)
    run_job(job_for("heat")[1].pk)
    assert breaker.state_of(*OPENAI)["state"] == breaker.OPEN


def test_half_open_lets_exactly_one_probe_through_among_concurrent_callers(settings):
    configure(settings, CIRCUIT_FAILURES=2, CIRCUIT_COOLDOWN=0)
    open_circuit()
    with ThreadPoolExecutor(16) as pool:
        permits = list(pool.map(lambda _i: breaker.allow(*OPENAI, 30), range(32)))
    probes = [p for p in permits if p.probe]
    assert len(probes) == 1 and probes[0].allowed
    others = [p for p in permits if not p.probe]
    assert all(not p.allowed and p.state == breaker.HALF_OPEN for p in others)
    # Each caller reads its clock before its script runs, so a caller whose script
    # ran after the probe's may be told to wait up to that gap (here < 1 s) past 30 s.
    assert all(0 < p.wait <= 31 for p in others)


def test_the_probe_decides_success_closes_failure_reopens(settings):
    configure(settings, CIRCUIT_FAILURES=2, CIRCUIT_COOLDOWN=0)
    open_circuit()
    probe = breaker.allow(*OPENAI, 30)
    late = breaker.allow(*OPENAI, 30)
    assert probe.probe and not late.allowed
    assert breaker.record(probe, UNAVAILABLE) == breaker.OPEN
    assert breaker.state_of(*OPENAI)["times_opened"] == 2

    probe = breaker.allow(*OPENAI, 30)  # cooldown 0: the next caller probes again
    assert probe.probe
    assert breaker.record(probe, None) == breaker.CLOSED
    assert breaker.allow(*OPENAI, 30).allowed


def test_a_probe_that_never_reports_is_taken_over_after_its_ttl(settings):
    configure(settings, CIRCUIT_FAILURES=2, CIRCUIT_COOLDOWN=0)
    open_circuit()
    lost = breaker.allow(*OPENAI, 0)  # its worker dies: no outcome ever recorded
    assert lost.probe
    successor = breaker.allow(*OPENAI, 30)
    assert successor.probe and successor.token != lost.token
    assert breaker.record(lost, None) == breaker.HALF_OPEN  # a stale probe decides nothing
    assert breaker.record(successor, None) == breaker.CLOSED


def test_an_unused_probe_is_released_for_the_next_caller(fake_provider, settings):
    configure(settings, CIRCUIT_FAILURES=2, CIRCUIT_COOLDOWN=0)
    Quota.objects.create(tenant="", kind="requests", period="day", limit=0)
    open_circuit()
    _lead, job = job_for("heat")
    assert run_job(job.pk) == Status.FAILED  # quota refused after the probe was taken
    assert fresh(job).error_code == ErrorCode.QUOTA_EXCEEDED
    assert breaker.allow(*OPENAI, 30).probe  # not stuck waiting for a probe that never ran


def test_a_probe_job_closes_the_circuit_and_jobs_flow_again(fake_provider, settings):
    configure(settings, CIRCUIT_FAILURES=2, CIRCUIT_COOLDOWN=0)
    fake_provider.reply_text = "cold"
    open_circuit()
    leads_jobs = [job_for("heat") for _ in range(3)]
    assert [run_job(job.pk) for _lead, job in leads_jobs] == [Status.SUCCEEDED] * 3
    assert breaker.state_of(*OPENAI)["state"] == breaker.CLOSED
    assert fake_provider.calls == 3


def test_after_circuit_max_wait_an_open_circuit_uses_attempts_then_fails(fake_provider, settings):
    configure(settings, CIRCUIT_FAILURES=2, CIRCUIT_COOLDOWN=60, CIRCUIT_MAX_WAIT=0)
    configure(settings, MAX_ATTEMPTS=2)
    open_circuit()
    _lead, job = job_for("heat")
    assert run_job(job.pk) == Status.QUEUED
    assert (fresh(job).attempts, fresh(job).error_code) == (1, ErrorCode.CIRCUIT_OPEN)
    assert 55 < scheduled_in(job) <= 61  # the retry waits for the circuit (Retry-After floor)
    assert run_job(job.pk) == Status.FAILED
    job = fresh(job)
    assert (job.status, job.error_code, job.attempts) == (Status.FAILED, "circuit_open", 2)
    assert fake_provider.calls == 0
    assert calls_of(job) == []  # no call was made, so no usage row


def test_circuits_show_in_the_diagnostics_view(settings):
    configure(settings, CIRCUIT_FAILURES=2)
    open_circuit(*HAIKU)
    client = Client()
    client.force_login(make_user("viewer", "django_ai_fields.view_aijob"))
    body = client.get(reverse("django_ai_fields:diagnostics"), {"providers": "0"}).json()
    assert body["circuits"]["ok"] is True
    (circuit,) = body["circuits"]["circuits"]
    assert (circuit["provider"], circuit["model"], circuit["state"]) == (*HAIKU, "open")
    breaker.reset(*HAIKU)
    body = client.get(reverse("django_ai_fields:diagnostics"), {"providers": "0"}).json()
    assert body["circuits"]["circuits"] == []


# --------------------------------------------------------------------------- fallback


def test_an_open_primary_goes_to_the_fallback_which_the_usage_row_names(fake_provider, settings):
    configure(settings, CIRCUIT_FAILURES=2, FALLBACK=[list(HAIKU)])
    fake_provider.reply_text = "warm"
    open_circuit()
    lead, job = job_for("heat")
    assert run_job(job.pk) == Status.SUCCEEDED
    assert fake_provider.last_request.path == "/v1/messages"
    assert calls_of(job) == [(*HAIKU, "")]
    job = fresh(job)
    assert (job.provider, job.model, job.attempts) == (*HAIKU, 1)
    usage = AIUsage.objects.get(job=job)
    assert job.cost_usd == usage.cost_usd > 0  # priced as the model that answered
    lead.refresh_from_db()
    assert lead.heat == "warm"


def test_the_fallback_takes_over_when_the_last_attempt_fails(fake_provider, settings):
    configure(settings, MAX_ATTEMPTS=2, FALLBACK=["anthropic"])
    fake_provider.reply_text = "cold"
    fake_provider.enqueue_fault(status=500, times=2)
    lead, job = job_for("heat")
    assert run_job(job.pk) == Status.QUEUED  # not the last attempt: an ordinary retry
    assert calls_of(job) == [(*OPENAI, "provider_unavailable")]
    assert run_job(job.pk) == Status.SUCCEEDED  # the last attempt's failure: fallback at once
    assert calls_of(job) == [
        (*OPENAI, "provider_unavailable"),
        (*OPENAI, "provider_unavailable"),
        (*HAIKU, ""),
    ]
    lead.refresh_from_db()
    assert lead.heat == "cold"


def test_a_field_fallback_overrides_the_setting(fake_provider, settings, monkeypatch):
    configure(settings, CIRCUIT_FAILURES=2, FALLBACK=[["azure", "gpt-4o"]])
    heat = Lead._meta.get_field("heat")
    monkeypatch.setattr(heat, "ai", dataclasses.replace(heat.ai, fallback=[HAIKU]))
    fake_provider.reply_text = "hot"
    open_circuit()
    _lead, job = job_for("heat")
    assert run_job(job.pk) == Status.SUCCEEDED
    assert calls_of(job) == [(*HAIKU, "")]


def test_when_every_route_is_open_the_job_waits_for_the_first_to_reopen(fake_provider, settings):
    configure(settings, CIRCUIT_FAILURES=2, CIRCUIT_COOLDOWN=120, FALLBACK=[HAIKU])
    open_circuit()
    configure(settings, CIRCUIT_COOLDOWN=30)
    open_circuit(*HAIKU)
    _lead, job = job_for("heat")
    assert run_job(job.pk) == Status.QUEUED
    assert (fresh(job).attempts, fresh(job).error_code) == (0, ErrorCode.CIRCUIT_OPEN)
    assert 25 < scheduled_in(job) <= 41  # the fallback's circuit reopens first
    assert fake_provider.calls == 0


# --------------------------------------------------------------------------- rate limits


def test_jobs_over_the_rate_limit_are_delayed_not_failed(fake_provider, settings):
    configure(settings, RATE_LIMITS={"openai": {"RPM": 2}})
    fake_provider.reply_text = "warm"
    jobs = [job_for("heat")[1] for _ in range(3)]
    assert [run_job(job.pk) for job in jobs] == [Status.SUCCEEDED, Status.SUCCEEDED, Status.QUEUED]
    late = fresh(jobs[2])
    assert (late.status, late.attempts, late.error_code) == (
        Status.QUEUED,
        0,
        ErrorCode.RATE_LIMITED,
    )
    assert 25 < scheduled_in(late) <= 61  # one request refills in 30 s (+ jitter)
    assert fake_provider.calls == 2


def test_the_tokens_per_minute_limit_counts_prompt_and_max_tokens(fake_provider, settings):
    configure(settings, RATE_LIMITS={"openai": {"TPM": 3000}}, MAX_TOKENS=1024)
    fake_provider.reply_text = "warm"
    jobs = [job_for("heat")[1] for _ in range(3)]
    # Each call needs ~1024 + its prompt tokens: two fit in 3000, the third waits.
    assert [run_job(job.pk) for job in jobs] == [Status.SUCCEEDED, Status.SUCCEEDED, Status.QUEUED]
    assert fresh(jobs[2]).error_code == ErrorCode.RATE_LIMITED


def test_the_rate_limit_is_atomic_across_concurrent_workers(settings):
    configure(settings, RATE_LIMITS={"openai": {"RPM": 5}})
    with ThreadPoolExecutor(16) as pool:
        waits = list(pool.map(lambda _i: ratelimit.acquire("openai", 10), range(40)))
    assert sum(1 for wait in waits if wait == 0) == 5
    assert all(0 < wait <= 12 for wait in waits if wait)
    assert ratelimit.acquire("anthropic", 10) == 0  # no limit configured


# --------------------------------------------------------------------------- idempotency


def test_a_retry_after_a_timeout_sends_the_same_idempotency_key_and_charges_once(
    fake_provider, settings
):
    set_provider_timeout(settings, 0.3)
    for kind, limit in (("requests", 10), ("tokens", 100_000)):
        Quota.objects.create(tenant="", kind=kind, period="day", limit=limit)
    fake_provider.reply_text = "hot"
    fake_provider.enqueue_fault(delay=1.0)  # the first call times out (the server answers later)
    _lead, job = job_for("heat")
    assert run_job(job.pk) == Status.QUEUED
    assert (usage_for("", "requests", "day"), usage_for("", "tokens", "day")) == (0, 0)
    assert run_job(job.pk) == Status.SUCCEEDED

    first, second = fake_provider.provider_requests
    key = first.headers["idempotency-key"]
    assert key.startswith(f"django-ai-fields-{job.pk}-")
    assert second.headers["idempotency-key"] == key
    assert calls_of(job) == [(*OPENAI, "timeout"), (*OPENAI, "")]
    # The timed-out attempt's reservation settled to nothing: one call is charged.
    assert usage_for("", "requests", "day") == 1
    assert usage_for("", "tokens", "day") == 11 + 7


def test_idempotency_keys_differ_per_job_and_per_request(fake_provider, settings):
    configure(settings, DEFAULT_PROVIDER="anthropic")
    fake_provider.responder = lambda request: '{"industry": "saas", "employees": -1}'
    _lead, job = job_for("profile")
    _lead, other = job_for("heat")
    run_job(job.pk)  # an invalid answer, then a repair call (a different request)
    fake_provider.responder = lambda request: "warm"
    run_job(other.pk)
    keys = [r.headers["idempotency-key"] for r in fake_provider.provider_requests]
    assert len(keys) == 3 and len(set(keys)) == 3
    assert all(r.path == "/v1/messages" for r in fake_provider.provider_requests)


def test_no_idempotency_header_when_a_provider_disables_it(fake_provider, settings):
    providers = settings.AI_FIELDS["PROVIDERS"]
    configure(
        settings,
        PROVIDERS={**providers, "openai": {**providers["openai"], "IDEMPOTENCY_HEADER": None}},
    )
    fake_provider.reply_text = "hot"
    _lead, job = job_for("heat")
    assert run_job(job.pk) == Status.SUCCEEDED
    assert "idempotency-key" not in fake_provider.last_request.headers
    assert max_tokens_of(fake_provider.last_request) > 0


def test_redis_down_lets_calls_through_the_breaker_and_limiter(fake_provider, settings):
    from tests.intake.test_outbox import REDIS_DOWN

    configure(settings, CIRCUIT_FAILURES=1, RATE_LIMITS={"openai": {"RPM": 1}})
    fake_provider.reply_text = "warm"
    jobs = [job_for("heat")[1] for _ in range(2)]
    with override_settings(RQ_QUEUES=REDIS_DOWN):
        assert breaker.allow(*OPENAI, 30).allowed
        assert [run_job(job.pk) for job in jobs] == [Status.SUCCEEDED, Status.SUCCEEDED]
        assert breaker.states()["ok"] is False
    assert fake_provider.calls == 2
