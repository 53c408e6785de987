"""Security review, round two (issue 23, findings 3 and 9): the numbers a provider
reports with an answer (token counts, a gateway's cost) are untrusted input.

Each hostile answer goes over real HTTP through the real SDK, on the three APIs
(Chat Completions, Anthropic Messages, the Responses API). An out-of-range number
ends the job ``invalid_output`` (not ``internal``); the call's usage row is still
written, at the app's own price, and nothing stored breaks a page."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client

from django_ai_fields.models import AIJob, AIUsage, Quota, QuotaUsage
from django_ai_fields.money.quotas import period_start
from tests.fake_provider import Usage, raw_number
from tests.surfaces import make_user
from tests.testapp.models import Product, Story

pytestmark = pytest.mark.django_db(transaction=True)

CHAT, ANTHROPIC, RESPONSES = "chat", "anthropic", "responses"
PATHS = (CHAT, ANTHROPIC, RESPONSES)
# What the app charges for the fake's default answer (11 input + 7 output tokens):
# gpt-4o-mini $0.15 / $0.60 per 1M; claude-haiku-4-5 $1 / $5 per 1M.
OWN_PRICE = {
    CHAT: Decimal("0.000006"),
    RESPONSES: Decimal("0.000006"),
    ANTHROPIC: Decimal("0.000046"),
}
# The usage key of the input token count in each API's answer.
INPUT_KEY = {CHAT: "prompt_tokens", ANTHROPIC: "input_tokens", RESPONSES: "input_tokens"}
HUGE = raw_number("9" * 5000)  # more digits than Python's JSON reader takes


@pytest.fixture
def gateway(fake_provider, settings):
    """The fake provider as a gateway: a tokens and a cost quota, so the
    settlement of each call is visible in QuotaUsage."""
    settings.AI_FIELDS = {**settings.AI_FIELDS, "MAX_ATTEMPTS": 1}
    Quota.objects.create(tenant="", kind="tokens", period="day", limit=10**9)
    Quota.objects.create(tenant="", kind="cost_usd", period="day", limit=Decimal(1000))
    return fake_provider


def use_path(settings, path):
    values = {}
    if path == ANTHROPIC:
        values = {"DEFAULT_PROVIDER": "anthropic", "DEFAULT_MODEL": "claude-haiku-4-5"}
    if path == RESPONSES:
        providers = dict(settings.AI_FIELDS["PROVIDERS"])
        providers["openai"] = {**providers["openai"], "API": "responses"}
        values = {"PROVIDERS": providers}
    settings.AI_FIELDS = {**settings.AI_FIELDS, **values}


def one_call(worker, model=Product, **values):
    model.objects.create(**(values or {"shop": "acme", "title": "Lamp", "price": 10}))
    worker.drain()
    return AIJob.objects.get(), AIUsage.objects.get()


def quota_used(kind):
    row = QuotaUsage.objects.get(kind=kind, period="day", period_start=period_start("day"))
    return row.used


def assert_refused_and_recorded(job, usage):
    """invalid_output, the call logged and charged (quotas settled at the row's figures)."""
    assert (job.status, job.error_code) == ("failed", "invalid_output"), job.error
    assert (usage.success, usage.error_code) == (False, "invalid_output")
    assert usage.cost_usd is not None and usage.cost_usd > 0
    assert quota_used("tokens") == usage.input_tokens + usage.output_tokens
    # The row keeps whole micro-dollars; the quota counts the exact cost rounded up.
    assert abs(quota_used("cost_usd") - usage.cost_usd * 1_000_000) <= 1


def assert_pages_render(job):
    """The pages finding 3 names, for a superuser: the usage list with its chart,
    the job's admin page and its JSON."""
    client = Client()
    client.force_login(make_user("root", superuser=True))
    for url in (
        "/admin/django_ai_fields/aiusage/",
        "/admin/django_ai_fields/aiusage/?chart_by=tenant",
        f"/admin/django_ai_fields/aijob/{job.pk}/change/",
        f"/ai/jobs/{job.pk}/",
    ):
        assert client.get(url).status_code == 200, url


# -- finding 3: a gateway's cost -----------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("cost", ["1e12", "-0.5", "NaN", "Infinity", "a lot"])
def test_a_hostile_gateway_cost_header_is_refused_and_priced_at_our_own_price(
    gateway, settings, worker, path, cost
):
    use_path(settings, path)
    gateway.response_headers = {"x-litellm-response-cost": cost}
    job, usage = one_call(worker)
    assert_refused_and_recorded(job, usage)
    assert "x-litellm-response-cost" in job.error
    assert usage.gateway_cost_usd is None
    assert (usage.input_tokens, usage.output_tokens) == (11, 7)
    assert usage.cost_usd == OWN_PRICE[path]
    assert_pages_render(job)


@pytest.mark.parametrize("path", [CHAT, RESPONSES])
def test_a_hostile_openrouter_cost_in_the_usage_is_refused(gateway, settings, worker, path):
    use_path(settings, path)
    gateway.usage = Usage(gateway_cost=1e12)
    job, usage = one_call(worker)
    assert_refused_and_recorded(job, usage)
    assert (usage.gateway_cost_usd, usage.cost_usd) == (None, OWN_PRICE[path])
    assert_pages_render(job)


@pytest.mark.parametrize("path", PATHS)
def test_the_litellm_cost_header_is_recorded_on_every_path(gateway, settings, worker, path):
    use_path(settings, path)
    gateway.response_headers = {"x-litellm-response-cost": "2.1e-05"}
    job, usage = one_call(worker)
    assert job.status == "succeeded"
    assert usage.gateway_cost_usd == Decimal("0.000021")
    assert usage.cost_usd == OWN_PRICE[path]


@pytest.mark.parametrize("path", PATHS)
def test_a_streamed_answer_records_the_litellm_cost_header(gateway, settings, worker, path):
    use_path(settings, path)
    gateway.response_headers = {"x-litellm-response-cost": "0.00003"}
    gateway.reply_text = "Once upon a time."
    job, usage = one_call(worker, Story, title="Dragons")
    assert job.status == "succeeded"
    assert usage.gateway_cost_usd == Decimal("0.00003")


# -- findings 3 and 9: token counts ----------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    "case",
    ["negative", "nan", "fraction", "above the bound", "a string of letters", "5000 digits"],
)
def test_a_hostile_input_token_count_ends_invalid_output_with_the_call_charged(
    gateway, settings, worker, path, case
):
    use_path(settings, path)
    value = {
        "negative": -5,
        "nan": float("nan"),
        "fraction": 10.5,
        "above the bound": 10**12,
        "a string of letters": "many",
        "5000 digits": HUGE,
    }[case]
    gateway.usage = Usage(extra={INPUT_KEY[path]: value})
    job, usage = one_call(worker)
    assert_refused_and_recorded(job, usage)
    sent = gateway.last_request.raw
    # The count the provider would not give is the app's own: every byte sent a token.
    assert len(b"Lamp priced 10.00") < usage.input_tokens <= len(sent)
    if case != "5000 digits":  # the other numbers of a readable answer are kept
        assert usage.output_tokens == 7
    assert_pages_render(job)


@pytest.mark.parametrize("path", PATHS)
def test_an_unreadable_answer_for_its_huge_number_is_charged_the_worst_case(
    gateway, settings, worker, path
):
    use_path(settings, path)
    output_key = {CHAT: "completion_tokens"}.get(path, "output_tokens")
    gateway.usage = Usage(extra={output_key: HUGE})
    job, usage = one_call(worker)
    assert_refused_and_recorded(job, usage)
    body = gateway.last_request.body
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    assert usage.output_tokens == (max_tokens or body["max_output_tokens"])


@pytest.mark.parametrize("path", [CHAT, RESPONSES])
def test_cached_tokens_above_the_prompt_are_refused_and_priced_as_uncached(
    gateway, settings, worker, path
):
    use_path(settings, path)
    # 10 prompt tokens of which 50 were read from the cache.
    gateway.usage = Usage(input_tokens=-40, cached_tokens=50)
    job, usage = one_call(worker)
    assert_refused_and_recorded(job, usage)
    assert "cached_tokens" in job.error
    assert (usage.input_tokens, usage.cached_tokens, usage.output_tokens) == (10, 0, 7)


def test_cache_reads_with_a_negative_anthropic_input_count_are_refused(gateway, settings, worker):
    use_path(settings, ANTHROPIC)
    # Added up as Anthropic counts them, -40 + 50 would look like 10 honest tokens.
    gateway.usage = Usage(input_tokens=-40, cached_tokens=50)
    job, usage = one_call(worker)
    assert_refused_and_recorded(job, usage)
    assert usage.cached_tokens <= usage.input_tokens


def test_reasoning_tokens_above_the_output_are_refused(gateway, settings, worker):
    gateway.usage = Usage(output_tokens=7, reasoning_tokens=70)
    job, usage = one_call(worker)
    assert_refused_and_recorded(job, usage)
    assert (usage.output_tokens, usage.reasoning_tokens) == (7, 0)


@pytest.mark.parametrize("path", PATHS)
def test_a_streamed_answer_with_a_hostile_count_is_refused_and_charged(
    gateway, settings, worker, path
):
    use_path(settings, path)
    gateway.reply_text = "Once upon a time."
    gateway.usage = Usage(extra={INPUT_KEY[path]: float("nan")})
    job, usage = one_call(worker, Story, title="Dragons")
    assert_refused_and_recorded(job, usage)
    assert_pages_render(job)


def test_a_hostile_count_in_a_chunked_backfill_is_refused_and_charged(gateway):
    from django_ai_fields.api import regenerate

    Product.objects.bulk_create([Product(shop="acme", title=f"P{i}") for i in range(3)])
    gateway.usage = Usage(extra={"prompt_tokens": -1})
    jobs = regenerate(Product.objects.all(), "tagline", sync=True)
    assert {(job.status, job.error_code) for job in jobs} == {("failed", "invalid_output")}
    usages = AIUsage.objects.all()
    assert [u.error_code for u in usages] == ["invalid_output"] * 3
    assert all(u.cost_usd and u.input_tokens > 0 for u in usages)


def test_the_job_carries_the_cost_of_its_refused_call(gateway, worker):
    gateway.usage = Usage(extra={"prompt_tokens": -1})
    job, usage = one_call(worker)
    assert (job.input_tokens, job.output_tokens) == (usage.input_tokens, usage.output_tokens)
    assert job.cost_usd == usage.cost_usd


def test_a_hostile_web_search_count_is_refused(gateway):
    from django_ai_fields.api import regenerate
    from tests.testapp.models import Poster

    gateway.web_searches_reported = -3
    job = regenerate(Poster.objects.create(title="Fair"), "research", sync=True)
    usage = AIUsage.objects.get()
    assert_refused_and_recorded(job, usage)
    assert usage.tool_calls == {"web_search": 1, "file_search": 1}  # the call items made


@pytest.mark.parametrize("path", [CHAT, ANTHROPIC])
def test_a_hostile_count_in_a_provider_batch_is_refused_and_charged(gateway, settings, path):
    import io

    from django.core.management import call_command

    from django_ai_fields.jobs.batches import poll
    from tests.reliability_support import make_lead

    use_path(settings, path)
    make_lead(company="acme")
    call_command(
        "ai_regenerate", "testapp.Lead", "--batch", "--field", "summary", stdout=io.StringIO()
    )
    gateway.usage = Usage(extra={INPUT_KEY[path]: -1})  # the batch's answer
    poll()
    job, usage = AIJob.objects.get(field_name="summary"), AIUsage.objects.get()
    assert (job.status, job.error_code) == ("failed", "invalid_output"), job.error
    assert (usage.success, usage.error_code, usage.output_tokens) == (False, "invalid_output", 7)
    assert usage.cost_usd is not None and usage.cost_usd > 0
    assert_pages_render(job)
