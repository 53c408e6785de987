"""Providers through the real SDKs over HTTP: request shapes, usage and error mapping."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from django_ai_fields.models import AIJob, AIUsage, ErrorCode, Status
from django_ai_fields.providers import CompletionRequest, ProviderError
from django_ai_fields.providers.anthropic import TOOL_NAME
from django_ai_fields.tenants.credentials import get_provider
from tests.fake_provider import FakeProvider, RecordedRequest, Usage
from tests.testapp.models import PROFILE_SCHEMA, Lead

pytestmark = pytest.mark.django_db(transaction=True)

PROFILE = {"industry": "fintech", "employees": 12}


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


def configure(settings: Any, **values: Any) -> None:
    settings.AI_FIELDS = {**settings.AI_FIELDS, **values}


def configure_provider(settings: Any, name: str, **values: Any) -> None:
    providers = dict(settings.AI_FIELDS["PROVIDERS"])
    providers[name] = {**providers.get(name, {}), **values}
    configure(settings, PROVIDERS=providers)


def answer_for_lead_fields(request: RecordedRequest) -> str:
    """Per-field answers; the field is named in the system prompt (either API shape)."""
    raw = request.raw.decode()
    if 'field \\"heat\\"' in raw:
        return "cold"
    if 'field \\"profile\\"' in raw:
        return json.dumps(PROFILE)
    return "A summary"


def request_for(fp: FakeProvider, field: str) -> RecordedRequest:
    (found,) = [r for r in fp.provider_requests if f'field \\"{field}\\"' in r.raw.decode()]
    return found


# --------------------------------------------------------------------------- OpenAI and Azure


def test_openai_request_shape(fake_provider):
    fake_provider.reply_text = json.dumps(PROFILE)
    response = get_provider("openai").complete(
        request(json_schema=PROFILE_SCHEMA, json_output=True, temperature=0.2)
    )

    sent = fake_provider.last_request
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-test-openai"
    assert sent.body["model"] == "gpt-4o-mini"
    assert sent.body["messages"] == [
        {"role": "system", "content": "You classify."},
        {"role": "user", "content": "<data>ACME</data>"},
    ]
    assert sent.body["temperature"] == 0.2
    assert sent.body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": PROFILE_SCHEMA},
    }
    assert json.loads(response.text) == PROFILE
    assert response.model == "gpt-4o-mini"


def test_openai_own_api_gets_max_completion_tokens(fake_provider, settings, monkeypatch):
    # No BASE_URL: the SDK's default endpoint, here redirected by the SDK's own env var.
    monkeypatch.setenv("OPENAI_BASE_URL", fake_provider.openai_base_url)
    configure_provider(settings, "openai", BASE_URL=None)
    get_provider("openai").complete(request())
    body = fake_provider.last_request.body
    assert body["max_completion_tokens"] == 50
    assert "max_tokens" not in body


def test_openai_compatible_base_url_gets_max_tokens(fake_provider):
    get_provider("openai").complete(request(json_output=True))
    body = fake_provider.last_request.body
    assert body["max_tokens"] == 50
    assert "max_completion_tokens" not in body
    assert body["response_format"] == {"type": "json_object"}  # JSON without a schema


def test_openai_through_the_engine_sends_the_schema_for_the_json_field(fake_provider, worker):
    fake_provider.responder = answer_for_lead_fields
    lead = Lead.objects.create(name="Ada", company="Acme", notes="Fintech, 12 people")
    worker.drain()

    profile = request_for(fake_provider, "profile").body
    assert profile["response_format"]["json_schema"]["schema"] == PROFILE_SCHEMA
    assert profile["max_tokens"] == 1024  # MAX_TOKENS default
    assert "response_format" not in request_for(fake_provider, "summary").body
    lead.refresh_from_db()
    assert (lead.heat, lead.profile) == ("cold", PROFILE)


def test_azure_uses_the_deployment_path_and_api_key_header(fake_provider, settings, worker):
    configure(settings, DEFAULT_PROVIDER="azure")
    fake_provider.responder = answer_for_lead_fields
    lead = Lead.objects.create(name="Ada", company="Acme", notes="Fintech, 12 people")
    worker.drain()

    assert fake_provider.calls == 3
    for sent in fake_provider.provider_requests:
        assert sent.path == "/openai/deployments/gpt-4o-mini/chat/completions"
        assert sent.headers["api-key"] == "azure-key"
        assert sent.query["api-version"]
        assert "max_completion_tokens" in sent.body
    lead.refresh_from_db()
    assert (lead.summary, lead.heat, lead.profile) == ("A summary", "cold", PROFILE)
    assert set(AIUsage.objects.values_list("provider", flat=True)) == {"azure"}


# --------------------------------------------------------------------------- Anthropic


def test_anthropic_request_shape_and_forced_tool_for_json(fake_provider, settings, worker):
    configure(settings, DEFAULT_PROVIDER="anthropic")
    fake_provider.responder = answer_for_lead_fields
    lead = Lead.objects.create(name="Ada", company="Acme", notes="Fintech, 12 people")
    worker.drain()

    heat = request_for(fake_provider, "heat")
    assert heat.path == "/v1/messages"
    assert heat.body["model"] == "claude-haiku-4-5"
    # The system message goes out as one block marked for Anthropic's prompt cache.
    (system,) = heat.body["system"]
    assert system["cache_control"] == {"type": "ephemeral"}
    assert "hot, warm, cold" in system["text"]
    assert heat.body["messages"] == [
        {
            "role": "user",
            "content": 'Classify this lead: <data field="notes">Fintech, 12 people</data>',
        }
    ]
    assert heat.body["max_tokens"] == 1024
    assert "tools" not in heat.body

    profile = request_for(fake_provider, "profile").body
    assert profile["tools"] == [
        {"name": TOOL_NAME, "description": "Record the answer.", "input_schema": PROFILE_SCHEMA}
    ]
    assert profile["tool_choice"] == {"type": "tool", "name": TOOL_NAME}
    lead.refresh_from_db()
    assert (lead.summary, lead.heat, lead.profile) == ("A summary", "cold", PROFILE)
    assert set(AIJob.objects.values_list("status", flat=True)) == {Status.SUCCEEDED}


def test_anthropic_wraps_a_non_object_schema_in_the_tool_input(fake_provider):
    fake_provider.reply_text = json.dumps({"value": ["a", "b"]})
    schema = {"type": "array", "items": {"type": "string"}}
    response = get_provider("anthropic").complete(
        request(model="claude-haiku-4-5", json_schema=schema, json_output=True)
    )
    tool = fake_provider.last_request.body["tools"][0]
    assert tool["input_schema"] == {
        "type": "object",
        "properties": {"value": schema},
        "required": ["value"],
    }
    assert json.loads(response.text) == ["a", "b"]


# --------------------------------------------------------------------------- usage mapping


def test_usage_openai_prompt_tokens_already_include_cached(fake_provider):
    fake_provider.usage = Usage(input_tokens=100, output_tokens=20, cached_tokens=30)
    response = get_provider("openai").complete(request())
    assert fake_provider.last_request.path == "/v1/chat/completions"
    assert (response.input_tokens, response.output_tokens, response.cached_tokens) == (130, 20, 30)


def test_usage_anthropic_input_tokens_get_cache_reads_and_writes_added(fake_provider):
    fake_provider.usage = Usage(
        input_tokens=100, output_tokens=20, cached_tokens=30, cache_creation_tokens=5
    )
    response = get_provider("anthropic").complete(request(model="claude-haiku-4-5"))
    assert (response.input_tokens, response.cached_tokens, response.cache_creation_tokens) == (
        135,
        30,
        5,
    )


def test_prompt_caching_can_be_switched_off(fake_provider, settings, worker):
    configure(settings, DEFAULT_PROVIDER="anthropic", PROMPT_CACHING=False)
    fake_provider.responder = answer_for_lead_fields
    Lead.objects.create(name="Ada", company="Acme", notes="n")
    worker.drain()
    assert isinstance(request_for(fake_provider, "heat").body["system"], str)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_usage_rows_count_all_input_tokens(fake_provider, settings, worker, provider):
    configure(settings, DEFAULT_PROVIDER=provider)
    fake_provider.usage = Usage(input_tokens=100, output_tokens=20, cached_tokens=30)
    fake_provider.responder = answer_for_lead_fields
    Lead.objects.create(name="Ada", company="Acme", notes="n")
    worker.drain()
    rows = AIUsage.objects.all()
    assert rows.count() == 3
    assert {(r.input_tokens, r.cached_tokens, r.output_tokens) for r in rows} == {(130, 30, 20)}


# --------------------------------------------------------------------------- errors

ERRORS = [
    pytest.param(
        {"status": 429, "headers": {"Retry-After": "7"}},
        ErrorCode.RATE_LIMITED,
        7.0,
        id="429-retry-after",
    ),
    pytest.param(
        {"status": 429, "headers": {"retry-after-ms": "1500"}},
        ErrorCode.RATE_LIMITED,
        1.5,
        id="429-retry-after-ms",
    ),
    pytest.param({"status": 401}, ErrorCode.AUTH, None, id="401"),
    pytest.param({"status": 403}, ErrorCode.AUTH, None, id="403"),
    pytest.param({"status": 400}, ErrorCode.BAD_REQUEST, None, id="400"),
    pytest.param({"status": 404}, ErrorCode.BAD_REQUEST, None, id="404"),
    pytest.param({"status": 422}, ErrorCode.BAD_REQUEST, None, id="422"),
    pytest.param({"status": 500}, ErrorCode.PROVIDER_UNAVAILABLE, None, id="500"),
    pytest.param({"status": 503}, ErrorCode.PROVIDER_UNAVAILABLE, None, id="503"),
    pytest.param({"status": 529}, ErrorCode.PROVIDER_UNAVAILABLE, None, id="529"),
    pytest.param({"delay": 1.0}, ErrorCode.TIMEOUT, None, id="timeout"),
    pytest.param({"drop": True}, ErrorCode.PROVIDER_UNAVAILABLE, None, id="reset"),
    pytest.param(
        {"raw_body": b"<html>gateway</html>"},
        ErrorCode.PROVIDER_UNAVAILABLE,
        None,
        id="200-not-json",
    ),
]


@pytest.mark.parametrize("provider", ["openai", "anthropic", "azure"])
@pytest.mark.parametrize(("fault", "code", "retry_after"), ERRORS)
def test_error_mapping(fake_provider, settings, provider, fault, code, retry_after):
    configure_provider(settings, provider, TIMEOUT=0.3)
    fake_provider.enqueue_fault(**fault)
    with pytest.raises(ProviderError) as raised:
        get_provider(provider).complete(request())
    assert raised.value.code == code
    assert raised.value.retry_after == retry_after
    assert raised.value.message
    assert fake_provider.calls == 1  # the SDK did not retry on its own


@pytest.mark.parametrize("provider", ["openai", "anthropic", "azure"])
def test_a_missing_api_key_is_auth_without_any_request(fake_provider, settings, provider):
    configure_provider(settings, provider, API_KEY="")
    with pytest.raises(ProviderError) as raised:
        get_provider(provider).complete(request())
    assert raised.value.code == ErrorCode.AUTH
    assert not raised.value.retryable
    assert fake_provider.calls == 0
    assert fake_provider.requests == []


def test_worker_processes_preload_the_provider_sdks(settings):
    """rqworker imports the SDKs before forking, not once per job."""
    code = (
        "import sys, django; sys.argv = ['manage.py', 'rqworker']; django.setup(); "
        "print('openai' in sys.modules, 'anthropic' in sys.modules)"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "AI_FIELDS_TEST_OVERRIDES": '{"DEFAULT_PROVIDER": "anthropic"}',
    }
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["False", "True"]
