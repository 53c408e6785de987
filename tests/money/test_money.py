"""Issue #3: tenants, race-free quotas and budgets, exact cost, tenant keys, result cache."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection

from django_ai_fields.api import regenerate
from django_ai_fields.jobs.sweep import sweep
from django_ai_fields.jobs.tasks import run_job
from django_ai_fields.models import (
    AIJob,
    AIUsage,
    ProviderCredential,
    Quota,
    QuotaUsage,
    TenantPolicy,
)
from django_ai_fields.money import quotas
from django_ai_fields.tenants import concurrency
from tests.fake_provider import Usage
from tests.testapp.models import Brief, Memo, Product

pytestmark = pytest.mark.django_db(transaction=True)

# 1 micro-dollar per output token, input free: a call's cost is exactly its output tokens.
FLAT_PRICING = {"flat-model": {"input": 0, "output": 1}}


@pytest.fixture
def tenants(fake_provider, settings):
    settings.AI_FIELDS = {
        **settings.AI_FIELDS,
        "TENANT_RESOLVER": "tests.testapp.tenancy.product_tenant",  # any row with a shop
    }
    return fake_provider


def make_products(count, shop="acme", title="Lamp"):
    return [Product.objects.create(shop=shop, title=title, price=10) for _ in range(count)]


def statuses(**filters):
    return list(AIJob.objects.filter(**filters).values_list("status", "error_code"))


# -- exact cost ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        # 1000 uncached x 0.15 + 400 cached x 0.075 + 200 out x 0.60 = 300 micro-dollars
        (Usage(input_tokens=1000, output_tokens=200, cached_tokens=400), Decimal("0.000300")),
        # 1000 x 0.15 + 200 x 0.60 = 270 micro-dollars
        (Usage(input_tokens=1000, output_tokens=200), Decimal("0.000270")),
    ],
)
def test_openai_call_costs_the_hand_computed_price(tenants, worker, usage, expected):
    tenants.usage = usage
    make_products(1)
    worker.drain()
    row = AIUsage.objects.get()
    assert row.model == "gpt-4o-mini"
    assert row.input_tokens == 1000 + usage.cached_tokens  # prompt_tokens include cached
    assert row.cached_tokens == usage.cached_tokens
    assert row.cost_usd == expected
    assert AIJob.objects.get().cost_usd == expected


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        # 1000 x 1.00 + 400 cache reads x 0.10 + 100 cache writes x 1.25 + 200 x 5.00
        (
            Usage(
                input_tokens=1000, output_tokens=200, cached_tokens=400, cache_creation_tokens=100
            ),
            Decimal("0.002165"),
        ),
        # 1000 x 1.00 + 200 x 5.00
        (Usage(input_tokens=1000, output_tokens=200), Decimal("0.002000")),
    ],
)
def test_anthropic_call_costs_the_hand_computed_price(tenants, settings, worker, usage, expected):
    settings.AI_FIELDS = {**settings.AI_FIELDS, "DEFAULT_PROVIDER": "anthropic"}
    tenants.usage = usage
    make_products(1)
    worker.drain()
    row = AIUsage.objects.get()
    assert row.model == "claude-haiku-4-5"
    # Anthropic's input_tokens exclude cache reads and writes; ours count all input.
    assert row.input_tokens == 1000 + usage.cached_tokens + usage.cache_creation_tokens
    assert row.cached_tokens == usage.cached_tokens
    assert row.cost_usd == expected


def test_pricing_setting_overrides_and_unknown_models_have_an_unknown_cost(
    tenants, settings, worker, caplog
):
    settings.AI_FIELDS = {
        **settings.AI_FIELDS,
        "PRICING": {"gpt-4o-mini": {"input": 1, "output": 2}},
    }
    tenants.usage = Usage(input_tokens=100, output_tokens=10)
    make_products(1)
    worker.drain()
    assert AIUsage.objects.get().cost_usd == Decimal("0.000120")

    settings.AI_FIELDS = {**settings.AI_FIELDS, "DEFAULT_MODEL": "no-such-model-x"}
    make_products(2, title="Chair")
    with caplog.at_level("WARNING", logger="django_ai_fields"):
        worker.drain()
    unknown = AIUsage.objects.filter(model="no-such-model-x")
    assert unknown.count() == 2
    assert {row.cost_usd for row in unknown} == {None}  # unknown, not "free"
    warnings = [r for r in caplog.records if "no-such-model-x" in r.getMessage()]
    assert len(warnings) <= 1  # once per model and process (0 if a worker process logged it)


# -- quotas and budgets ----------------------------------------------------------


def test_requests_quota_is_never_overshot_by_concurrent_workers(tenants, worker):
    Quota.objects.create(tenant="", kind="requests", period="day", limit=10)
    make_products(60)
    worker.drain_parallel(4)
    assert tenants.calls == 10
    assert AIJob.objects.filter(status="succeeded").count() == 10
    assert AIJob.objects.filter(status="failed", error_code="quota_exceeded").count() == 50
    assert quotas.usage_for("acme", "requests", "day") == 10
    # The refused saves themselves all succeeded.
    assert Product.objects.count() == 60


def test_cost_quota_is_never_overshot_by_concurrent_workers(tenants, settings, worker):
    settings.AI_FIELDS = {
        **settings.AI_FIELDS,
        "DEFAULT_MODEL": "flat-model",
        "PRICING": FLAT_PRICING,
    }
    tenants.usage = Usage(input_tokens=50, output_tokens=100)  # actual == worst case
    Quota.objects.create(tenant="acme", kind="cost_usd", period="month", limit=Decimal("0.001"))
    for _ in range(60):
        Brief.objects.create(shop="acme", title="Lamp")  # Brief.text: max_tokens=100
    worker.drain_parallel(4)
    assert tenants.calls == 10
    assert AIJob.objects.filter(status="failed", error_code="quota_exceeded").count() == 50
    assert quotas.usage_for("acme", "cost_usd", "month") == 1000  # micro-dollars


def test_tenant_quota_overrides_the_default_and_other_tenants_are_separate(tenants, worker):
    Quota.objects.create(tenant="", kind="requests", period="day", limit=1)
    Quota.objects.create(tenant="vip", kind="requests", period="day", is_unlimited=True)
    make_products(2, shop="acme")
    make_products(2, shop="vip")
    make_products(1, shop="other")
    worker.drain()
    by_tenant = {t: statuses(tenant=t) for t in ("acme", "vip", "other")}
    assert sorted(by_tenant["acme"]) == [("failed", "quota_exceeded"), ("succeeded", "")]
    assert by_tenant["vip"] == [("succeeded", ""), ("succeeded", "")]
    assert by_tenant["other"] == [("succeeded", "")]


def test_reservation_settles_to_actual_tokens(tenants, worker):
    Quota.objects.create(tenant="", kind="tokens", period="month", limit=1_000_000)
    tenants.usage = Usage(input_tokens=11, output_tokens=7)
    make_products(1)
    worker.drain()
    assert quotas.usage_for("acme", "tokens", "month") == 18
    assert AIJob.objects.get().reservations == []


def test_failed_call_gives_its_reservation_back(tenants, worker):
    Quota.objects.create(tenant="", kind="requests", period="day", limit=5)
    tenants.enqueue_fault(status=401)
    make_products(1)
    worker.drain()
    assert statuses() == [("failed", "auth")]
    assert quotas.usage_for("acme", "requests", "day") == 0


def test_field_budget_refuses_with_budget_exceeded_per_tenant(tenants, settings, worker):
    settings.AI_FIELDS = {
        **settings.AI_FIELDS,
        "DEFAULT_MODEL": "flat-model",
        "PRICING": FLAT_PRICING,
    }
    tenants.usage = Usage(input_tokens=5, output_tokens=100)
    # Memo.text: budget_usd=0.0003 and max_tokens=100, i.e. 3 calls of 100 micro-dollars.
    for shop in ["acme"] * 5 + ["other"]:
        Memo.objects.create(shop=shop, title="Q3 plan")
    worker.drain()
    assert sorted(statuses(tenant="acme")).count(("succeeded", "")) == 3
    assert sorted(statuses(tenant="acme")).count(("failed", "budget_exceeded")) == 2
    assert statuses(tenant="other") == [("succeeded", "")]
    failed = AIJob.objects.filter(error_code="budget_exceeded").first()
    assert "testapp.Memo.text" in failed.error


def test_sweep_releases_the_reservation_of_a_lost_job(tenants, settings):
    Quota.objects.create(tenant="", kind="requests", period="day", limit=3)
    make_products(1)
    job = AIJob.objects.get()
    reservations = quotas.reserve("acme", quotas.Demand(1, 0, 0))
    assert quotas.usage_for("acme", "requests", "day") == 1
    # What a SIGKILLed worker leaves behind: running, holding a reservation, long ago.
    AIJob.objects.filter(pk=job.pk).update(
        status="running",
        run_token="dead",
        attempts=1,
        reservations=reservations,
        started_at="2000-01-01T00:00:00Z",
    )
    report = sweep()
    assert report.recovered == 1
    assert quotas.usage_for("acme", "requests", "day") == 0
    assert AIJob.objects.get().reservations == []


def test_quota_reservation_is_one_conditional_update_per_quota(tenants):
    Quota.objects.create(tenant="", kind="requests", period="day", limit=2)
    assert quotas.reserve("t", quotas.Demand(1, 0, 0))
    assert quotas.reserve("t", quotas.Demand(1, 0, 0))
    with pytest.raises(quotas.QuotaRefused) as refused:
        quotas.reserve("t", quotas.Demand(1, 0, 0))
    assert refused.value.code == "quota_exceeded"
    assert QuotaUsage.objects.get(tenant="t").used == 2


# -- tenant credentials ------------------------------------------------------------


def test_tenant_key_is_encrypted_at_rest_and_used_for_the_tenants_calls(tenants, worker):
    credential = ProviderCredential(
        tenant="acme",
        provider="openai",
        default_model="gpt-4.1",
        base_url=tenants.openai_base_url,  # a tenant's row is used whole: its own URL
    )
    credential.set_api_key("sk-acme-very-secret")
    credential.save()
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key FROM django_ai_fields_providercredential")
        (stored,) = cursor.fetchone()
    assert "sk-acme-very-secret" not in stored
    assert ProviderCredential.objects.get().get_api_key() == "sk-acme-very-secret"

    make_products(1, shop="acme")
    make_products(1, shop="other")
    worker.drain()
    auth = {req.body["model"]: req.headers["authorization"] for req in tenants.provider_requests}
    assert auth == {"gpt-4.1": "Bearer sk-acme-very-secret", "gpt-4o-mini": "Bearer sk-test-openai"}
    stored_text = " ".join(f"{j.error} {j.prompt} {j.output}" for j in AIJob.objects.all())
    assert "sk-acme-very-secret" not in stored_text


def test_missing_key_everywhere_fails_with_auth_and_no_request(tenants, settings, worker):
    settings.AI_FIELDS = {**settings.AI_FIELDS, "PROVIDERS": {}}
    make_products(1)
    worker.drain()
    assert statuses() == [("failed", "auth")]
    assert tenants.calls == 0


def test_encryption_keys_rotate(settings):
    from cryptography.fernet import Fernet

    from django_ai_fields import crypto

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.AI_FIELDS = {**settings.AI_FIELDS, "ENCRYPTION_KEY": old}
    token = crypto.encrypt("sk-rotate-me")
    settings.AI_FIELDS = {**settings.AI_FIELDS, "ENCRYPTION_KEY": [new, old]}
    assert crypto.decrypt(token) == "sk-rotate-me"
    rotated = crypto.rotate(token)
    settings.AI_FIELDS = {**settings.AI_FIELDS, "ENCRYPTION_KEY": [new]}
    assert crypto.decrypt(rotated) == "sk-rotate-me"


# -- tenant policies ---------------------------------------------------------------


def test_tenant_with_ai_switched_off_gets_cancelled_jobs(tenants, worker):
    TenantPolicy.objects.create(tenant="acme", ai_enabled=False, disabled_reason="Plan expired")
    make_products(1, shop="acme")
    worker.drain()
    job = AIJob.objects.get()
    assert (job.status, job.error) == ("cancelled", "Plan expired")
    assert tenants.calls == 0


def test_job_over_the_concurrency_cap_waits_instead_of_failing(tenants, settings):
    settings.AI_FIELDS = {**settings.AI_FIELDS, "CONCURRENCY_RETRY_DELAY": 30}
    TenantPolicy.objects.create(tenant="acme", max_concurrent_jobs=1)
    make_products(1, shop="acme")
    job = AIJob.objects.get()
    assert concurrency.acquire("acme", 999_999, 1)  # another job holds the only slot
    assert run_job(job.pk) == "queued"
    job.refresh_from_db()
    assert (job.status, job.attempts, tenants.calls) == ("queued", 0, 0)
    concurrency.release("acme", 999_999)
    assert run_job(job.pk) == "succeeded"
    assert tenants.calls == 1


# -- result cache ------------------------------------------------------------------


def test_cache_hit_makes_no_request_and_uses_no_quota(tenants, settings, worker):
    settings.AI_FIELDS = {**settings.AI_FIELDS, "CACHE_TTL": 3600}
    Quota.objects.create(tenant="", kind="requests", period="day", limit=100)
    make_products(1)
    worker.drain()
    make_products(1)  # identical title and price: identical rendered prompt
    worker.drain()
    assert tenants.calls == 1
    hit = AIUsage.objects.get(cache_hit=True)
    assert (hit.cost_usd, hit.input_tokens) == (Decimal(0), 0)
    assert quotas.usage_for("acme", "requests", "day") == 1
    values = set(Product.objects.values_list("tagline", flat=True))
    assert len(values) == 1 and None not in values


def test_cache_is_per_tenant_and_an_explicit_regenerate_bypasses_it(tenants, settings, worker):
    settings.AI_FIELDS = {**settings.AI_FIELDS, "CACHE_TTL": 3600}
    (first,) = make_products(1, shop="acme")
    make_products(1, shop="other")
    worker.drain()
    assert tenants.calls == 2  # the other tenant does not get acme's answer
    regenerate(first, "tagline")
    worker.drain()
    assert tenants.calls == 3


def test_field_cache_ttl_zero_disables_the_global_cache(tenants, settings, worker):
    settings.AI_FIELDS = {**settings.AI_FIELDS, "CACHE_TTL": 3600}
    for _ in range(2):
        Brief.objects.create(shop="acme", title="Lamp")  # Brief.text: cache_ttl=0
    worker.drain()
    assert tenants.calls == 2


def test_offline_answers_cost_nothing(settings, worker):
    settings.AI_FIELDS = {**settings.AI_FIELDS, "DEFAULT_PROVIDER": "offline"}
    make_products(1)
    worker.drain()
    usage = AIUsage.objects.get()
    assert usage.input_tokens > 0
    assert usage.cost_usd == Decimal(0)
    assert AIJob.objects.get().cost_usd == Decimal(0)
