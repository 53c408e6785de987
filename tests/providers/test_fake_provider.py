"""The fake provider, exercised through the real openai and anthropic SDKs over loopback HTTP."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import openai
import pytest

from tests.fake_provider import FakeProvider, Usage, _Handler, running_fake_provider

OPENAI_KEY = "sk-test-openai-key"
AZURE_KEY = "azure-test-key"
ANTHROPIC_KEY = "sk-ant-test-key"
TIMEOUT = 5.0

TOOL = {
    "name": "record_lead",
    "description": "Record the lead classification.",
    "input_schema": {
        "type": "object",
        "properties": {"temperature": {"type": "string"}, "score": {"type": "integer"}},
        "required": ["temperature", "score"],
    },
}


@pytest.fixture(scope="module")
def _server() -> Iterator[FakeProvider]:
    with running_fake_provider() as provider:
        yield provider


@pytest.fixture
def fp(_server: FakeProvider) -> Iterator[FakeProvider]:
    _server.reset()
    yield _server
    _server.reset()


def openai_client(fp: FakeProvider, timeout: float = TIMEOUT) -> openai.OpenAI:
    return openai.OpenAI(
        api_key=OPENAI_KEY, base_url=fp.openai_base_url, max_retries=0, timeout=timeout
    )


def azure_client(fp: FakeProvider) -> openai.AzureOpenAI:
    return openai.AzureOpenAI(
        api_key=AZURE_KEY,
        api_version="2024-10-21",
        azure_endpoint=fp.azure_endpoint,
        azure_deployment="dep",
        max_retries=0,
        timeout=TIMEOUT,
    )


def anthropic_client(fp: FakeProvider, timeout: float = TIMEOUT) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        api_key=ANTHROPIC_KEY, base_url=fp.anthropic_base_url, max_retries=0, timeout=timeout
    )


def openai_chat(fp: FakeProvider, prompt: str = "hello", timeout: float = TIMEOUT) -> Any:
    return openai_client(fp, timeout).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}]
    )


def anthropic_chat(fp: FakeProvider, prompt: str = "hello", timeout: float = TIMEOUT) -> Any:
    return anthropic_client(fp, timeout).messages.create(
        model="claude-haiku-4-5", max_tokens=64, messages=[{"role": "user", "content": prompt}]
    )


# (name, call, SDK module) so that error tests run against both providers.
PROVIDERS: list[tuple[str, Callable[..., Any], Any]] = [
    ("openai", openai_chat, openai),
    ("anthropic", anthropic_chat, anthropic),
]
provider_params = pytest.mark.parametrize(
    ("call", "sdk"), [(call, sdk) for _, call, sdk in PROVIDERS], ids=[p[0] for p in PROVIDERS]
)


# --------------------------------------------------------------------------- success paths


def test_openai_chat_completion_returns_reply_and_usage(fp: FakeProvider) -> None:
    fp.reply_text = "warm lead"
    fp.usage = Usage(input_tokens=11, output_tokens=7, cached_tokens=5)

    completion = openai_chat(fp, "classify this lead")

    assert completion.choices[0].message.content == "warm lead"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "gpt-4o-mini"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 16  # includes the cached tokens
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 5
    assert completion.usage.completion_tokens == 7
    assert completion.usage.total_tokens == 23
    request = fp.last_request
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.body["messages"] == [{"role": "user", "content": "classify this lead"}]


def test_default_responder_numbers_calls_and_custom_responder_sees_request(
    fp: FakeProvider,
) -> None:
    assert openai_chat(fp).choices[0].message.content == "fake reply #1"
    assert anthropic_chat(fp).content[0].text == "fake reply #2"

    fp.responder = lambda request: request.body["messages"][-1]["content"].upper()
    assert openai_chat(fp, "shout").choices[0].message.content == "SHOUT"
    fp.reply_text = "fixed"
    assert openai_chat(fp, "ignored").choices[0].message.content == "fixed"
    assert fp.calls == 4


def test_azure_openai_client_hits_deployment_path(fp: FakeProvider) -> None:
    fp.reply_text = "from azure"
    completion = azure_client(fp).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )

    assert completion.choices[0].message.content == "from azure"
    request = fp.last_request
    assert request.path == "/openai/deployments/dep/chat/completions"
    assert request.query["api-version"] == "2024-10-21"
    assert request.headers["api-key"] == AZURE_KEY


def test_anthropic_message_returns_text_and_cache_usage(fp: FakeProvider) -> None:
    fp.reply_text = "hot lead"
    fp.usage = Usage(input_tokens=11, output_tokens=7, cached_tokens=5, cache_creation_tokens=3)

    message = anthropic_chat(fp, "classify this lead")

    assert message.content[0].type == "text"
    assert message.content[0].text == "hot lead"
    assert message.model == "claude-haiku-4-5"
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == 11  # excludes the cache
    assert message.usage.cache_read_input_tokens == 5
    assert message.usage.cache_creation_input_tokens == 3
    assert message.usage.output_tokens == 7
    assert fp.last_request.path == "/v1/messages"


def test_anthropic_forced_tool_use_returns_parsed_input(fp: FakeProvider) -> None:
    fp.reply_text = json.dumps({"temperature": "hot", "score": 9})

    message = anthropic_client(fp).messages.create(
        model="claude-haiku-4-5",
        max_tokens=64,
        tools=[TOOL],
        tool_choice={"type": "tool", "name": "record_lead"},
        messages=[{"role": "user", "content": "classify"}],
    )

    block = message.content[0]
    assert block.type == "tool_use"
    assert block.name == "record_lead"
    assert block.input == {"temperature": "hot", "score": 9}
    assert message.stop_reason == "tool_use"


def test_openai_forced_function_returns_tool_call(fp: FakeProvider) -> None:
    fp.reply_text = json.dumps({"temperature": "cold", "score": 1})
    function = {"name": "record_lead", "parameters": TOOL["input_schema"]}

    completion = openai_client(fp).chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "classify"}],
        tools=[{"type": "function", "function": function}],
        tool_choice={"type": "function", "function": {"name": "record_lead"}},
    )

    call = completion.choices[0].message.tool_calls[0]
    assert call.function.name == "record_lead"
    assert json.loads(call.function.arguments) == {"temperature": "cold", "score": 1}


def test_forced_tool_with_non_json_reply_surfaces_as_server_error(fp: FakeProvider) -> None:
    fp.reply_text = "not an object"
    with pytest.raises(anthropic.InternalServerError, match="not JSON"):
        anthropic_client(fp).messages.create(
            model="claude-haiku-4-5",
            max_tokens=64,
            tools=[TOOL],
            tool_choice={"type": "tool", "name": "record_lead"},
            messages=[{"role": "user", "content": "classify"}],
        )


def test_finish_reason_length_maps_per_provider(fp: FakeProvider) -> None:
    fp.finish_reason = "length"
    assert openai_chat(fp).choices[0].finish_reason == "length"
    assert anthropic_chat(fp).stop_reason == "max_tokens"


def test_models_endpoint_lists_models_and_is_not_a_call(fp: FakeProvider) -> None:
    fp.enqueue_fault(status=429)
    fp.fail_all_with = 503

    openai_ids = [model.id for model in openai_client(fp).models.list()]
    anthropic_ids = [model.id for model in anthropic_client(fp).models.list()]

    assert openai_ids == anthropic_ids == fp.models
    assert fp.calls == 0
    assert fp.pending_faults == 1  # /v1/models never consumes the script
    assert [request.path for request in fp.requests] == ["/v1/models", "/v1/models"]


def test_unknown_path_is_a_json_404(fp: FakeProvider) -> None:
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"{fp.url}/v2/nothing", timeout=TIMEOUT)

    assert caught.value.code == 404
    assert "error" in json.loads(caught.value.read())
    assert fp.calls == 0
    assert fp.requests[-1].path == "/v2/nothing"


# --------------------------------------------------------------------------- faults


@provider_params
def test_429_with_retry_after_raises_rate_limit_error(
    fp: FakeProvider, call: Callable[..., Any], sdk: Any
) -> None:
    fp.enqueue_fault(status=429, headers={"Retry-After": "2"}, message="slow down")

    with pytest.raises(sdk.RateLimitError) as caught:
        call(fp)

    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "2"
    assert "slow down" in str(caught.value)
    assert fp.pending_faults == 0
    assert call(fp) is not None  # one-shot: the next call succeeds


def test_error_bodies_are_provider_shaped(fp: FakeProvider) -> None:
    fp.enqueue_fault(status=429, times=2)

    with pytest.raises(openai.RateLimitError) as openai_error:
        openai_chat(fp)
    with pytest.raises(anthropic.RateLimitError) as anthropic_error:
        anthropic_chat(fp)

    openai_body = openai_error.value.response.json()
    assert set(openai_body["error"]) >= {"message", "type", "code"}
    assert openai_error.value.code == "rate_limit_exceeded"
    anthropic_body = anthropic_error.value.response.json()
    assert anthropic_body["type"] == "error"
    assert anthropic_body["error"]["type"] == "rate_limit_error"


@provider_params
@pytest.mark.parametrize(
    ("status", "error_name"),
    [
        (500, "InternalServerError"),
        (503, "InternalServerError"),
        (401, "AuthenticationError"),
        (400, "BadRequestError"),
    ],
)
def test_status_faults_raise_matching_sdk_errors(
    fp: FakeProvider, call: Callable[..., Any], sdk: Any, status: int, error_name: str
) -> None:
    fp.enqueue_fault(status=status)

    with pytest.raises(getattr(sdk, error_name)) as caught:
        call(fp)

    assert caught.value.status_code == status


@provider_params
def test_drop_raises_connection_error(fp: FakeProvider, call: Callable[..., Any], sdk: Any) -> None:
    fp.enqueue_fault(drop=True)

    with pytest.raises(sdk.APIConnectionError) as caught:
        call(fp)

    assert not isinstance(caught.value, sdk.APITimeoutError)
    assert fp.calls == 1  # the dropped request was still recorded


@provider_params
def test_delay_beyond_client_timeout_raises_timeout(
    fp: FakeProvider, call: Callable[..., Any], sdk: Any
) -> None:
    fp.enqueue_fault(delay=2.0)

    started = time.perf_counter()
    with pytest.raises(sdk.APITimeoutError):
        call(fp, timeout=0.3)

    assert time.perf_counter() - started < 1.5
    assert call(fp) is not None  # the delay was one-shot


def test_delay_within_timeout_then_succeeds(fp: FakeProvider) -> None:
    fp.enqueue_fault(delay=0.3)
    started = time.perf_counter()
    assert openai_chat(fp).choices[0].message.content == "fake reply #1"
    assert time.perf_counter() - started >= 0.3

    fp.delay = 0.2
    started = time.perf_counter()
    anthropic_chat(fp)
    assert time.perf_counter() - started >= 0.2


def test_bad_json_body_reaches_the_caller(fp: FakeProvider) -> None:
    # Neither SDK wraps this: a 200 with a broken body surfaces as a plain ValueError.
    fp.enqueue_fault(raw_body=b"not json", times=2)
    with pytest.raises(ValueError):
        openai_chat(fp)
    with pytest.raises(ValueError):
        anthropic_chat(fp)


def test_fail_all_with_persists_until_cleared(fp: FakeProvider) -> None:
    fp.fail_all_with = 503
    for _ in range(3):
        with pytest.raises(openai.InternalServerError):
            openai_chat(fp)
    with pytest.raises(anthropic.InternalServerError):
        anthropic_chat(fp)

    fp.fail_all_with = None
    assert openai_chat(fp).choices[0].message.content == "fake reply #5"


def test_faults_are_consumed_fifo_across_providers(fp: FakeProvider) -> None:
    fp.enqueue_fault(status=429)
    fp.enqueue_fault(status=500)

    with pytest.raises(anthropic.RateLimitError):
        anthropic_chat(fp)
    with pytest.raises(openai.InternalServerError):
        openai_chat(fp)
    assert openai_chat(fp).choices[0].message.content == "fake reply #3"


# --------------------------------------------------------------------------- records


def test_records_api_keys_and_bodies(fp: FakeProvider) -> None:
    openai_chat(fp, "prompt for openai")
    anthropic_chat(fp, "prompt for anthropic")

    openai_request, anthropic_request = fp.provider_requests
    assert openai_request.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    # anthropic 2.x sends the API key as "Authorization: Bearer"; older SDKs used x-api-key.
    assert ANTHROPIC_KEY in _anthropic_credentials(anthropic_request.headers)
    text = fp.bodies_text()
    assert "prompt for openai" in text
    assert "prompt for anthropic" in text
    assert OPENAI_KEY not in text
    assert ANTHROPIC_KEY not in text
    assert anthropic_request.raw.decode() in text


def _anthropic_credentials(headers: dict[str, str]) -> set[str]:
    return {headers.get("x-api-key", ""), headers.get("authorization", "").removeprefix("Bearer ")}


def test_reset_restores_defaults(fp: FakeProvider) -> None:
    openai_chat(fp)
    fp.reply_text = "x"
    fp.finish_reason = "length"
    fp.usage = Usage(input_tokens=1)
    fp.delay = 1.0
    fp.fail_all_with = 500
    fp.enqueue_fault(status=429)

    fp.reset()

    assert (fp.requests, fp.calls, fp.pending_faults) == ([], 0, 0)
    assert (fp.reply_text, fp.delay, fp.fail_all_with) == (None, 0.0, None)
    assert fp.usage == Usage()
    completion = openai_chat(fp)
    assert completion.choices[0].message.content == "fake reply #1"
    assert completion.choices[0].finish_reason == "stop"


def test_concurrent_calls_are_all_recorded(fp: FakeProvider) -> None:
    client = openai_client(fp)
    replies: list[str] = []

    def work() -> None:
        for _ in range(5):
            completion = client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
            replies.append(completion.choices[0].message.content or "")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert fp.calls == 40
    assert sorted(replies) == sorted(f"fake reply #{n}" for n in range(1, 41))


# --------------------------------------------------------------------------- transport


def test_sequential_calls_are_fast_and_kept_alive(fp: FakeProvider) -> None:
    assert _Handler.disable_nagle_algorithm is True
    assert _Handler.protocol_version == "HTTP/1.1"
    client = openai_client(fp)
    opened_before = fp.connections_opened

    started = time.perf_counter()
    for _ in range(20):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    elapsed = time.perf_counter() - started

    assert elapsed < 5.0  # generous; ~2 ms/call here, ~44 ms/call if Nagle stalls were back
    assert fp.connections_opened - opened_before == 1  # one keep-alive connection for 20 calls


def test_context_manager_start_and_stop() -> None:
    provider = FakeProvider()
    with provider:
        base_url = provider.openai_base_url
        assert openai_chat(provider).choices[0].message.content == "fake reply #1"
    client = openai.OpenAI(api_key=OPENAI_KEY, base_url=base_url, max_retries=0, timeout=1.0)
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    provider.stop()  # stopping twice is harmless
