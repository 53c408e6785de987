"""The OpenAI Responses API mode and hosted tools, through the real openai SDK over
HTTP to the fake provider (tests/fake_responses.py): request bodies, usage, tools."""

from __future__ import annotations

import json
from typing import Any

import pytest

from django_ai_fields.providers import CompletionRequest, ProviderError
from django_ai_fields.providers.tools import normalize
from django_ai_fields.tenants.credentials import get_provider
from tests.fake_provider import FakeProvider, Usage

pytestmark = pytest.mark.django_db(transaction=True)


def request(**values: Any) -> CompletionRequest:
    return CompletionRequest(
        **{
            "system": "You classify.",
            "prompt": "<data>ACME</data>",
            "model": "gpt-4o-mini",
            "max_tokens": 50,
            **values,
        }
    )


def use_responses(settings: Any) -> None:
    providers = dict(settings.AI_FIELDS["PROVIDERS"])
    providers["openai"] = {**providers["openai"], "API": "responses"}
    settings.AI_FIELDS = {**settings.AI_FIELDS, "PROVIDERS": providers}


def test_chat_completions_stays_the_default(fake_provider: FakeProvider) -> None:
    get_provider("openai").complete(request())
    assert fake_provider.last_request.path == "/v1/chat/completions"


def test_provider_entry_switches_to_the_responses_api(
    fake_provider: FakeProvider, settings: Any
) -> None:
    use_responses(settings)
    fake_provider.usage = Usage(
        input_tokens=30, output_tokens=9, cached_tokens=64, reasoning_tokens=4
    )
    fake_provider.reply_text = "warm"
    response = get_provider("openai").complete(request(temperature=0.2))
    sent = fake_provider.last_request
    assert sent.path == "/v1/responses"
    assert sent.body["instructions"] == "You classify."
    assert sent.body["input"] == [{"role": "user", "content": "<data>ACME</data>"}]
    assert sent.body["max_output_tokens"] == 50
    assert sent.body["temperature"] == 0.2
    assert sent.body["store"] is False
    assert "messages" not in sent.body and "max_completion_tokens" not in sent.body
    assert response.text == "warm"
    # input_tokens includes the cached ones (as on Chat Completions).
    assert (response.input_tokens, response.cached_tokens) == (94, 64)
    assert (response.output_tokens, response.reasoning_tokens) == (9, 4)
    assert response.finish_reason == "stop"
    assert response.tool_calls == [] and response.tool_uses == {}


def test_request_api_overrides_the_provider_entry(fake_provider: FakeProvider) -> None:
    get_provider("openai").complete(request(api="responses"))
    assert fake_provider.last_request.path == "/v1/responses"


def test_json_schema_goes_through_text_format(fake_provider: FakeProvider) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    fake_provider.reply_text = '{"n": 3}'
    response = get_provider("openai").complete(
        request(api="responses", json_schema=schema, json_output=True)
    )
    body = fake_provider.last_request.body
    assert body["text"] == {"format": {"type": "json_schema", "name": "output", "schema": schema}}
    assert json.loads(response.text) == {"n": 3}


def test_json_without_schema_asks_for_a_json_object(fake_provider: FakeProvider) -> None:
    fake_provider.reply_text = "{}"
    get_provider("openai").complete(request(api="responses", json_output=True))
    assert fake_provider.last_request.body["text"] == {"format": {"type": "json_object"}}


def test_cut_off_answer_reads_as_length(fake_provider: FakeProvider) -> None:
    fake_provider.finish_reason = "length"
    response = get_provider("openai").complete(request(api="responses"))
    assert response.finish_reason == "length"


def test_hosted_tools_force_the_responses_api_and_are_reported(
    fake_provider: FakeProvider,
) -> None:
    tools = normalize(
        ["web_search", {"type": "file_search", "vector_store_ids": ["vs_1"]}, "code_interpreter"]
    )
    fake_provider.tool_calls_per_tool = 2
    response = get_provider("openai").complete(request(tools=tools))
    sent = fake_provider.last_request
    assert sent.path == "/v1/responses"
    assert sent.body["tools"] == [
        {"type": "web_search"},
        {"type": "file_search", "vector_store_ids": ["vs_1"]},
        {"type": "code_interpreter", "container": {"type": "auto"}},
    ]
    assert [c["type"] for c in response.tool_calls] == ["web_search"] * 2 + ["file_search"] * 2 + [
        "code_interpreter"
    ] * 2
    assert response.tool_calls[0]["detail"].startswith("fake search")
    assert response.tool_calls[2]["detail"].startswith("fake query")
    assert response.tool_calls[4]["detail"] == "print(6 * 7)"
    # Web searches as tool_usage reports them; code interpreter per container.
    assert response.tool_uses == {"web_search": 2, "file_search": 2, "code_interpreter": 1}


def test_streamed_responses(fake_provider: FakeProvider) -> None:
    fake_provider.reply_text = "one two three"
    fake_provider.usage = Usage(input_tokens=5, output_tokens=3)
    items = list(get_provider("openai").stream(request(tools=normalize(["web_search"]))))
    sent = fake_provider.last_request
    assert sent.path == "/v1/responses" and sent.body["stream"] is True
    assert items[:-1] == ["one ", "two ", "three"]
    final = items[-1]
    assert final.text == "one two three"
    assert (final.input_tokens, final.output_tokens) == (5, 3)
    assert final.tool_uses == {"web_search": 1}


def test_stream_error_mid_response_is_classified(fake_provider: FakeProvider) -> None:
    fake_provider.reply_text = "one two three"
    fake_provider.enqueue_fault(stream_error=429)
    with pytest.raises(ProviderError) as caught:
        list(get_provider("openai").stream(request(api="responses")))
    assert caught.value.code == "rate_limited"


def test_http_errors_are_classified(fake_provider: FakeProvider) -> None:
    fake_provider.enqueue_fault(status=400, message="Unknown parameter")
    with pytest.raises(ProviderError) as caught:
        get_provider("openai").complete(request(api="responses"))
    assert caught.value.code == "bad_request"


# -- a field with hosted tools, end to end -------------------------------------------------


def test_a_field_with_tools_logs_its_tool_calls_and_records_their_fees(
    fake_provider,
):
    from decimal import Decimal

    from django_ai_fields.api import regenerate
    from django_ai_fields.models import AIUsage, Status
    from tests.testapp.models import Poster

    fake_provider.reply_text = "Held every spring since 1990."
    fake_provider.usage = Usage(input_tokens=1000, output_tokens=100)
    poster = Poster.objects.create(title="Spring fair")
    job = regenerate(poster, "research", sync=True)
    sent = fake_provider.last_request
    assert sent.path == "/v1/responses"
    assert sent.body["tools"] == [
        {"type": "web_search"},
        {"type": "file_search", "vector_store_ids": ["vs_posters"]},
    ]
    assert job.status == Status.SUCCEEDED
    (tool_step,) = [step for step in job.steps if "tool_calls" in step]
    assert tool_step["message"] == "Tool calls: web_search (1), file_search (1)"
    assert [call["type"] for call in tool_step["tool_calls"]] == ["web_search", "file_search"]
    assert job.steps[-1]["phase"] == "DONE"
    usage = AIUsage.objects.get(job=job)
    assert usage.tool_calls == {"web_search": 1, "file_search": 1}
    # TOOL_PRICING defaults: $0.01 a web search, $0.0025 a file search.
    assert usage.tool_cost_usd == Decimal("0.012500")
    # Tokens (1000 x 0.15 + 100 x 0.60 micro-dollars) plus the tool fees.
    assert usage.cost_usd == Decimal("0.012710")
    job.refresh_from_db()
    assert job.cost_usd == Decimal("0.012710")


def test_tool_pricing_setting_prices_the_uses(fake_provider, settings):
    from decimal import Decimal

    from django_ai_fields.api import regenerate
    from django_ai_fields.models import AIUsage
    from tests.testapp.models import Poster

    settings.AI_FIELDS = {**settings.AI_FIELDS, "TOOL_PRICING": {"web_search": "0.5"}}
    fake_provider.tool_calls_per_tool = 2
    job = regenerate(Poster.objects.create(title="Fair"), "research", sync=True)
    usage = AIUsage.objects.get(job=job)
    assert usage.tool_calls == {"web_search": 2, "file_search": 2}
    assert usage.tool_cost_usd == Decimal("1.000000")  # file search has no price here


def test_tools_go_to_openai_when_the_default_provider_has_no_responses_api(fake_provider, settings):
    from django_ai_fields.api import regenerate
    from tests.testapp.models import Poster

    settings.AI_FIELDS = {**settings.AI_FIELDS, "DEFAULT_PROVIDER": "anthropic"}
    job = regenerate(Poster.objects.create(title="Fair"), "research", sync=True)
    assert (job.status, job.provider) == ("succeeded", "openai")
    assert [r.path for r in fake_provider.provider_requests] == ["/v1/responses"]
    assert Poster._meta.get_field("research").check() == []


def test_hosted_tools_on_a_non_openai_provider_are_a_check_error() -> None:
    from django.db import models
    from django.test.utils import isolate_apps

    from django_ai_fields.fields import AIGeneratedField

    with isolate_apps("tests.testapp"):

        class Researched(models.Model):
            title = models.CharField(max_length=10)
            text = AIGeneratedField(
                prompt="About {title}.",
                provider="anthropic",
                tools=["web_search", "image_generation", {"type": "file_search"}],
                api="soap",
                blank=True,
                null=True,
            )

            class Meta:
                app_label = "testapp"

        messages = Researched._meta.get_field("text").check()
    ids = sorted(message.id for message in messages)
    assert ids == [
        "django_ai_fields.E143",
        "django_ai_fields.E143",
        "django_ai_fields.E144",
    ]
    text = " ".join(message.msg for message in messages)
    assert "'image_generation' is not a hosted tool" in text
    assert "vector_store_ids" in text


def test_tools_need_an_openai_provider(settings) -> None:
    from django.db import models
    from django.test.utils import isolate_apps

    from django_ai_fields.fields import AIGeneratedField

    with isolate_apps("tests.testapp"):

        class Searched(models.Model):
            title = models.CharField(max_length=10)
            text = AIGeneratedField(
                prompt="About {title}.", provider="anthropic", tools=["web_search"]
            )

            class Meta:
                app_label = "testapp"

        (message,) = Searched._meta.get_field("text").check()
    assert message.id == "django_ai_fields.E145"


def test_a_bad_api_in_providers_is_a_check_error(settings) -> None:
    from django_ai_fields.declare.input_checks import check_provider_apis

    settings.AI_FIELDS = {**settings.AI_FIELDS, "PROVIDERS": {"openai": {"API": "respones"}}}
    (message,) = check_provider_apis()
    assert message.id == "django_ai_fields.E146" and "'respones'" in message.msg


# -- the Batch API ---------------------------------------------------------------------------


def test_a_batch_of_responses_requests_goes_to_v1_responses(fake_provider, settings):
    from tests.fake_batches import multipart_form

    use_responses(settings)
    fake_provider.reply_text = "batched"
    fake_provider.usage = Usage(input_tokens=20, output_tokens=4, cached_tokens=8)
    provider = get_provider("openai")
    batch_id = provider.submit_batch([("1", request()), ("2", request(prompt="<data>B</data>"))])
    (upload,) = [r for r in fake_provider.requests if r.path == "/v1/files"]
    form = multipart_form(upload.headers["content-type"], upload.raw)
    lines = [json.loads(line) for line in form["file"].splitlines()]
    assert [line["url"] for line in lines] == ["/v1/responses"] * 2
    assert lines[0]["body"]["max_output_tokens"] == 50 and "input" in lines[0]["body"]
    (create,) = [r for r in fake_provider.requests if r.path == "/v1/batches"]
    assert create.body["endpoint"] == "/v1/responses"
    assert provider.batch_state(batch_id).ended
    results = provider.batch_results(batch_id, {})
    assert results["1"].text == "batched" and results["1"].batch
    assert (results["2"].input_tokens, results["2"].cached_tokens) == (28, 8)
    answered = [r for r in fake_provider.provider_requests if r.path == "/v1/responses"]
    assert len(answered) == 2


def test_the_offline_provider_accepts_tools_and_calls_none(settings):
    from django_ai_fields.api import regenerate
    from tests.testapp.models import Poster

    job = regenerate(Poster.objects.create(title="Fair"), "research", sync=True)
    assert job.output.endswith("[tools not called offline: web_search, file_search]")
    assert not [step for step in job.steps if "tool_calls" in step]


def test_a_backfill_chunk_calls_the_responses_api_concurrently(fake_provider):
    from django_ai_fields.api import regenerate
    from django_ai_fields.models import AIUsage, Status
    from tests.testapp.models import Poster

    for title in ("A", "B", "C"):
        Poster.objects.create(title=title)
    jobs = regenerate(Poster.objects.all(), "research", sync=True)
    assert [job.status for job in jobs] == [Status.SUCCEEDED] * 3
    assert {r.path for r in fake_provider.provider_requests} == {"/v1/responses"}
    assert [u.tool_calls for u in AIUsage.objects.all()] == [
        {"web_search": 1, "file_search": 1}
    ] * 3


def test_the_result_cache_key_covers_tools_and_files() -> None:
    from django_ai_fields.calling.result_cache import cache_key
    from django_ai_fields.providers.attachments import Attachment

    plain = request()
    red = request(attachments=[Attachment("a.png", "image/png", b"red")])
    blue = request(attachments=[Attachment("a.png", "image/png", b"blue")])
    searched = request(tools=normalize(["web_search"]))
    keys = {cache_key("t", "openai", r) for r in (plain, red, blue, searched)}
    assert len(keys) == 4
    assert cache_key("t", "openai", red) == cache_key(
        "t", "openai", request(attachments=[Attachment("a.png", "image/png", b"red")])
    )


def test_usage_export_has_the_tool_columns() -> None:
    from decimal import Decimal

    from django_ai_fields.admin.resources import AIUsageResource
    from django_ai_fields.models import AIUsage

    AIUsage.objects.create(
        provider="openai",
        model="gpt-4o-mini",
        tool_calls={"web_search": 3},
        tool_cost_usd=Decimal("0.03"),
        cost_usd=Decimal("0.031"),
    )
    exported = AIUsageResource().export()
    row = dict(zip(exported.headers, exported[0], strict=True))
    assert row["tool_cost_usd"] == "0.030000"
    assert "web_search" in str(row["tool_calls"])
