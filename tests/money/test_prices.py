"""Issue 15: maintained prices (genai-prices), unpriced models refused under cost
limits, gateways (PRICE_AS, the gateway's own cost), reasoning tokens, alerts."""

from __future__ import annotations

import datetime
from decimal import Decimal

import django
import pytest

from django_ai_fields.models import AIJob, AIUsage, Quota, QuotaUsage
from django_ai_fields.money import pricing
from django_ai_fields.money.bills import Bill
from django_ai_fields.providers import CompletionResponse
from tests.fake_provider import Usage
from tests.testapp.models import Memo, Product

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def tenants(fake_provider, settings):
    settings.AI_FIELDS = {
        **settings.AI_FIELDS,
        "TENANT_RESOLVER": "tests.testapp.tenancy.product_tenant",
    }
    return fake_provider


def use(settings, **values):
    settings.AI_FIELDS = {**settings.AI_FIELDS, **values}


def use_provider_option(settings, provider, **values):
    providers = dict(settings.AI_FIELDS["PROVIDERS"])
    providers[provider] = {**providers[provider], **values}
    use(settings, PROVIDERS=providers)


def one_product(worker, shop="acme"):
    Product.objects.create(shop=shop, title="Lamp", price=10)
    worker.drain()


# -- exact costs against the price pages' arithmetic (USD per 1M tokens) -------------


def test_openai_model_only_the_maintained_data_knows_with_cache_and_reasoning(
    tenants, settings, worker
):
    # gpt-5.4: $2.50 input, $0.25 cached input, $15 output per 1M (openai.com/api/pricing).
    use(settings, DEFAULT_MODEL="gpt-5.4")
    tenants.usage = Usage(
        input_tokens=1000, cached_tokens=400, output_tokens=200, reasoning_tokens=50
    )
    one_product(worker)
    row = AIUsage.objects.get()
    # 1000 x 2.50 + 400 x 0.25 + 200 x 15 = 5600 micro-dollars (reasoning is billed as output)
    assert row.cost_usd == Decimal("0.005600")
    assert (row.input_tokens, row.cached_tokens, row.reasoning_tokens) == (1400, 400, 50)
    assert AIJob.objects.get().cost_usd == Decimal("0.005600")


def test_openai_flex_service_tier_is_priced_at_the_flex_rate(tenants, settings, worker):
    # gpt-5.4 flex: $1.25 input, $0.13 cached, $7.50 output per 1M.
    use(settings, DEFAULT_MODEL="gpt-5.4")
    tenants.usage = Usage(
        input_tokens=1000, cached_tokens=400, output_tokens=200, service_tier="flex"
    )
    one_product(worker)
    # 1000 x 1.25 + 400 x 0.13 + 200 x 7.50 = 2802
    assert AIUsage.objects.get().cost_usd == Decimal("0.002802")


def test_anthropic_cache_writes_of_both_durations(tenants, settings, worker):
    # claude-opus-4-6: $5 input, $0.50 cache read, $6.25 5-minute write (1.25x),
    # $10 1-hour write (2x), $25 output per 1M.
    use(settings, DEFAULT_PROVIDER="anthropic", DEFAULT_MODEL="claude-opus-4-6")
    use_provider_option(settings, "anthropic", DEFAULT_MODEL="claude-opus-4-6")
    tenants.usage = Usage(
        input_tokens=1000,
        cached_tokens=400,
        cache_creation_tokens=150,
        cache_write_1h_tokens=50,
        output_tokens=200,
    )
    one_product(worker)
    row = AIUsage.objects.get()
    # 1000 x 5 + 400 x 0.50 + 100 x 6.25 + 50 x 10 + 200 x 25 = 11325
    assert row.cost_usd == Decimal("0.011325")
    assert (row.input_tokens, row.cache_write_tokens) == (1550, 150)


def test_dated_anthropic_snapshot_is_priced_like_its_model(tenants, settings, worker):
    use(settings, DEFAULT_PROVIDER="anthropic")
    use_provider_option(settings, "anthropic", DEFAULT_MODEL="claude-haiku-4-5-20251001")
    tenants.usage = Usage(input_tokens=1000, output_tokens=200)
    one_product(worker)
    assert AIUsage.objects.get().cost_usd == Decimal("0.002000")  # 1000 x 1 + 200 x 5


@pytest.mark.parametrize(
    ("provider", "model", "expected"),
    [
        # OpenAI Batch API: gpt-4o-mini $0.075 input, $0.30 output per 1M.
        ("openai", "gpt-4o-mini", Decimal("0.000135")),  # 1000 x 0.075 + 200 x 0.30
        # Anthropic Message Batches: claude-haiku-4-5 $0.50 input, $2.50 output per 1M.
        ("anthropic", "claude-haiku-4-5", Decimal("0.001000")),  # 1000 x 0.5 + 200 x 2.5
    ],
)
def test_batch_answers_cost_the_batch_rate(provider, model, expected):
    response = CompletionResponse(text="x", input_tokens=1000, output_tokens=200, batch=True)
    assert Bill.for_answer(model, response, provider=provider).cost_usd == expected


def test_prices_are_taken_at_the_calls_own_time():
    # o3 cost $10 / $40 per 1M until 2025-06-10, $2 / $8 since.
    args = {"input_tokens": 1000, "output_tokens": 200, "provider": "openai"}
    before = datetime.datetime(2025, 5, 1, tzinfo=datetime.timezone.utc)
    after = datetime.datetime(2026, 11, 1, tzinfo=datetime.timezone.utc)
    assert pricing.cost_micro("o3", at=before, **args) == Decimal("18000")
    assert pricing.cost_micro("o3", at=after, **args) == Decimal("3600")


def test_pricing_override_wins_over_the_maintained_data(tenants, settings, worker):
    use(settings, PRICING={"gpt-4o-mini": {"input": 1, "output": 2}})
    tenants.usage = Usage(input_tokens=100, output_tokens=10)
    one_product(worker)
    assert AIUsage.objects.get().cost_usd == Decimal("0.000120")


def test_price_data_names_the_package_version_and_date():
    data = pricing.price_data()
    assert data["source"] == "genai-prices"
    assert data["version"].startswith("0.2.")
    datetime.date.fromisoformat(data["as_of"])


# -- unpriced models ---------------------------------------------------------------------


def test_unpriced_model_under_a_cost_quota_is_refused_before_the_call(tenants, settings, worker):
    use(settings, DEFAULT_MODEL="no-such-model-x")
    Quota.objects.create(tenant="", kind="cost_usd", period="month", limit=Decimal("5"))
    one_product(worker)
    job = AIJob.objects.get()
    assert (job.status, job.error_code) == ("failed", "quota_exceeded")
    assert "no-such-model-x" in job.error and "AI_FIELDS['PRICING']" in job.error
    assert tenants.calls == 0
    assert QuotaUsage.objects.filter(used__gt=0).count() == 0


def test_unpriced_model_under_a_field_budget_is_refused_before_the_call(tenants, settings, worker):
    use(settings, DEFAULT_MODEL="no-such-model-x")
    Memo.objects.create(shop="acme", title="Q3 plan")  # Memo.text has budget_usd
    worker.drain()
    job = AIJob.objects.get()
    assert (job.status, job.error_code) == ("failed", "budget_exceeded")
    assert "no-such-model-x" in job.error and "testapp.Memo.text" in job.error
    assert tenants.calls == 0


def test_unpriced_model_without_a_cost_limit_records_an_unknown_cost(tenants, settings, worker):
    use(settings, DEFAULT_MODEL="no-such-model-y")
    Quota.objects.create(tenant="", kind="requests", period="day", limit=10)  # not a cost limit
    one_product(worker)
    assert AIJob.objects.get().status == "succeeded"
    assert AIUsage.objects.get().cost_usd is None  # unknown, not "free"


# -- gateways ----------------------------------------------------------------------------


def test_gateway_alias_is_priced_as_its_real_model_and_openrouter_cost_recorded(
    tenants, settings, worker
):
    # An OpenAI-compatible gateway serving "claude-sonnet-4-5" from a cheaper upstream.
    use(settings, DEFAULT_MODEL="claude-sonnet-4-5")
    tenants.usage = Usage(input_tokens=100, output_tokens=20, gateway_cost=0.0000135)
    one_product(worker)
    unmapped = AIUsage.objects.get()
    assert unmapped.cost_usd == Decimal("0.000600")  # 100 x 3 + 20 x 15: the alias's price
    assert unmapped.gateway_cost_usd == Decimal("0.0000135")

    AIUsage.objects.all().delete()
    use_provider_option(settings, "openai", PRICE_AS={"claude-sonnet-4-5": "gpt-4o-mini"})
    Product.objects.create(shop="acme", title="Chair", price=3)
    worker.drain()
    mapped = AIUsage.objects.get()
    assert mapped.cost_usd == Decimal("0.000027")  # 100 x 0.15 + 20 x 0.60
    assert (mapped.model, mapped.priced_as) == ("claude-sonnet-4-5", "gpt-4o-mini")


def test_litellm_cost_header_is_recorded(tenants, settings, worker):
    tenants.response_headers = {"x-litellm-response-cost": "2.1e-05"}
    tenants.usage = Usage(input_tokens=100, output_tokens=20)
    one_product(worker)
    row = AIUsage.objects.get()
    assert row.gateway_cost_usd == Decimal("0.000021")
    assert row.cost_usd == Decimal("0.000027")


# -- alerts ------------------------------------------------------------------------------


def test_each_alert_fraction_fires_exactly_once_with_four_concurrent_workers(
    tenants, worker, tmp_path, monkeypatch
):
    log = tmp_path / "alerts.log"
    monkeypatch.setenv("AI_FIELDS_TEST_ALERT_LOG", str(log))
    Quota.objects.create(tenant="", kind="requests", period="day", limit=10)
    Quota.objects.create(tenant="", kind="tokens", period="day", limit=10_000_000)
    for _ in range(24):
        Product.objects.create(shop="acme", title="Lamp", price=10)
    worker.drain_parallel(4)
    assert AIJob.objects.filter(status="succeeded").count() == 10
    lines = sorted(log.read_text().splitlines())
    assert lines == ["acme requests day 0.8", "acme requests day 1.0"]
    assert QuotaUsage.objects.get(kind="requests").alerted_permille == 1000


# -- the cost preview --------------------------------------------------------------------

# 1 micro-dollar per output token, input free: a Brief's worst case is exactly 100.
FLAT_PRICING = {"flat-model": {"input": 0, "output": 1}}


def briefs_with_history(settings, count):
    from django.contrib.contenttypes.models import ContentType

    from tests.testapp.models import Brief

    use(
        settings,
        DEFAULT_MODEL="flat-model",
        PRICING=FLAT_PRICING,
        TENANT_RESOLVER="tests.testapp.tenancy.product_tenant",
    )
    for _ in range(count):
        Brief.objects.create(shop="acme", title="Lamp")
    past = AIJob.objects.create(
        content_type=ContentType.objects.get_for_model(Brief), object_id="0", field_name="text"
    )
    for cost in ("0.000030", "0.000050"):  # average: 40 micro-dollars per call
        AIUsage.objects.create(
            tenant="acme", job=past, provider="openai", model="flat-model", cost_usd=cost
        )
    return Brief


def test_dry_run_prints_worst_case_expected_cost_and_quota_refusals(fake_provider, settings):
    from io import StringIO

    from django.core.management import call_command

    briefs_with_history(settings, 5)
    Quota.objects.create(tenant="acme", kind="cost_usd", period="month", limit=Decimal("0.0003"))
    jobs_before, calls_before = AIJob.objects.count(), fake_provider.calls
    out = StringIO()
    call_command("ai_regenerate", "testapp.Brief", "--dry-run", stdout=out)
    assert out.getvalue().splitlines() == [
        "Dry run: would request 5 AI job(s) for 5 row(s) of testapp.Brief.",
        "Worst-case cost: $0.000500 (input estimate + max_tokens at current prices).",
        "Expected cost: $0.000200 (from each tenant's recent cost per call).",
        "Quotas and budgets would refuse 2 job(s): cost_usd quota per month of tenant acme: 2.",
    ]
    assert (AIJob.objects.count(), fake_provider.calls) == (jobs_before, calls_before)


def test_api_estimate_names_unpriced_models_and_their_refusals(fake_provider, settings):
    from django_ai_fields.api import estimate

    brief_model = briefs_with_history(settings, 3)
    use(settings, DEFAULT_MODEL="no-such-model-z")
    Quota.objects.create(tenant="", kind="cost_usd", period="day", limit=Decimal("1"))
    result = estimate(brief_model.objects.all(), "text")
    assert (result.rows, result.jobs, result.worst_case_usd) == (3, 3, Decimal(0))
    assert result.unpriced_models == ["no-such-model-z"]
    assert result.refusals == {"cost_usd quota per day of tenant acme": 3}
    single = estimate(brief_model.objects.first())
    assert (single.rows, single.jobs) == (1, 1)


# -- the commands show the price data and unknown costs ----------------------------------


def test_ai_status_names_the_price_data_in_use(settings):
    import io

    from django.core.management import call_command
    from django.core.management.base import CommandError

    use(settings, PRICING=FLAT_PRICING)
    out = io.StringIO()
    with pytest.raises(CommandError):  # no worker here: unhealthy, but it still reports
        call_command("ai_status", "--no-providers", stdout=out)
    data = pricing.price_data()
    assert (
        f"Prices: genai-prices {data['version']} (latest price change {data['as_of']}), "
        "1 AI_FIELDS['PRICING'] override(s)"
    ) in out.getvalue()


def test_ai_usage_lists_calls_of_unknown_cost():
    import io

    from django.core.management import call_command

    AIUsage.objects.create(tenant="acme", provider="openai", model="mystery-1", cost_usd=None)
    AIUsage.objects.create(tenant="acme", provider="openai", model="gpt-4o-mini", cost_usd="0.1")
    out = io.StringIO()
    call_command("ai_usage", stdout=out)
    assert out.getvalue().splitlines()[-1] == (
        "Unknown cost: 1 call(s) of mystery-1 (no price known; not in the totals). "
        "Add them to AI_FIELDS['PRICING']."
    )


def test_the_documented_receiver_emails_the_site_admins(settings, mailoutbox):
    from django.core.mail import mail_admins
    from django.dispatch import receiver

    from django_ai_fields.money import quotas
    from django_ai_fields.signals import quota_threshold_reached

    @receiver(quota_threshold_reached)
    def email_quota_alert(sender, tenant, quota, fraction, **kwargs):
        mail_admins(
            f"AI quota {fraction:.0%} used: {tenant}",
            f"Tenant {tenant} has used {fraction:.0%} of its {quota.kind} quota "
            f"per {quota.period} (limit {quota.limit}).",
        )

    # Django 6.0 takes plain addresses and deprecates (name, address) pairs.
    admin = "ops@example.com"
    settings.ADMINS = [admin] if django.VERSION >= (6, 0) else [("Ops", admin)]
    Quota.objects.create(tenant="", kind="requests", period="day", limit=10)
    try:
        for _ in range(9):
            reservations = quotas.reserve("acme", quotas.Demand(1, 0, 0))
            quotas.settle(reservations, quotas.Demand(1, 0, 0))
            quotas.check_alerts("acme", reservations)
    finally:
        quota_threshold_reached.disconnect(email_quota_alert)
    assert [m.subject for m in mailoutbox] == ["[Django] AI quota 80% used: acme"]
    assert "requests quota per day (limit 10" in mailoutbox[0].body


def test_the_offline_provider_is_never_refused_as_unpriced(settings, worker):
    use(settings, DEFAULT_PROVIDER="offline", DEFAULT_MODEL="offline-demo")
    Quota.objects.create(tenant="", kind="cost_usd", period="month", limit=Decimal("1"))
    Product.objects.create(title="Lamp", price=10)
    worker.drain()
    assert AIJob.objects.get().status == "succeeded"
    assert AIUsage.objects.get().cost_usd == Decimal(0)


def test_prices_come_from_the_bundled_data_without_any_network(monkeypatch):
    import socket

    from genai_prices import data_snapshot

    def no_network(*args, **kwargs):
        raise AssertionError("pricing tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    cost = pricing.cost_micro("gpt-5.5", input_tokens=100, output_tokens=20, provider="openai")
    assert cost == Decimal("1100")  # 100 x $5 + 20 x $30 per 1M
    snapshot = data_snapshot.get_snapshot()
    assert snapshot.from_auto_update is False  # the package's bundled data, never updated
