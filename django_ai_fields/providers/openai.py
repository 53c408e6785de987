"""OpenAI chat completions; also Azure OpenAI and any OpenAI-compatible BASE_URL."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final, Literal

import httpx2
import openai
from openai.types.chat import ChatCompletion

from ..codes import ErrorCode
from . import openai_responses as responses_api
from .attachments import chat_content
from .base import (
    BatchState,
    CompletionRequest,
    CompletionResponse,
    Provider,
    ProviderError,
    ReportedNumbersError,
    async_key,
    clients,
    error_from_sdk,
    require_key,
    warm_sdk_client,
)
from .batching import batched, not_run, request_body, status_error, typed_error, unreadable
from .streams import StreamItem, read_openai, stream_error
from .usage import response_from_completion

BATCH_ENDPOINT: Final = "/v1/chat/completions"
# The endpoints a batch of ours goes to (the SDK's batches.create takes a Literal).
BatchEndpoint = Literal["/v1/chat/completions", "/v1/responses"]
# A batch that ended: its output and error files are final.
BATCH_ENDED = ("completed", "expired", "cancelled", "failed")
# Seconds allowed for uploading a batch's request file (it may be large).
UPLOAD_TIMEOUT = 300.0
# A minimal valid completion, parsed once by warm().
WARM_COMPLETION = {
    "id": "warm",
    "object": "chat.completion",
    "created": 0,
    "model": "warm",
    "choices": [
        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": ""}}
    ],
    "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
}


class OpenAIProvider(Provider):
    name = "openai"
    idempotency_header = "Idempotency-Key"

    def client_options(self) -> dict[str, Any]:
        return {
            "api_key": self.config.get("API_KEY") or "missing",
            "base_url": self.config.get("BASE_URL") or None,
            "timeout": self.timeout(),
            "max_retries": 0,  # jobs retry with backoff instead; see docs/reliability.md
        }

    def client_key(self) -> tuple[Any, ...]:
        return ("openai", self.config.get("API_KEY"), self.config.get("BASE_URL"), self.timeout())

    def client(self) -> openai.OpenAI:
        return clients.get(self.client_key(), lambda: openai.OpenAI(**self.client_options()))

    def async_client(self) -> openai.AsyncOpenAI:
        return clients.get(
            async_key(self.client_key()), lambda: openai.AsyncOpenAI(**self.client_options())
        )

    def warm(self) -> None:
        client = self.client()
        client.chat.completions  # noqa: B018  (imports the resource's modules)
        warm_sdk_client(client, ChatCompletion, WARM_COMPLETION)

    def probe(self) -> bool | None:
        require_key(self)
        try:
            self.client().models.list()
        except (openai.OpenAIError, ValueError) as exc:
            raise error_from_sdk(openai, exc) from exc
        return True

    def max_tokens_param(self) -> str:
        # OpenAI's own API wants max_completion_tokens; compatible servers
        # (Ollama, vLLM, OpenRouter) reliably understand max_tokens.
        default = "max_tokens" if self.config.get("BASE_URL") else "max_completion_tokens"
        return str(self.config.get("MAX_TOKENS_PARAM") or default)

    def build_kwargs(self, request: CompletionRequest) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": request.model,
            "messages": [
                {"role": "system", "content": request.system},
                {"role": "user", "content": chat_content(request.prompt, request.attachments)},
            ],
            self.max_tokens_param(): request.max_tokens,
        }
        if request.temperature is not None:
            kwargs["temperature"] = request.temperature
        if request.json_schema:
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": request.json_schema},
            }
        elif request.json_output:
            kwargs["response_format"] = {"type": "json_object"}
        kwargs.update(request.options)
        return kwargs

    def uses_responses(self, request: CompletionRequest) -> bool:
        return responses_api.uses_responses(self.config, request)

    def complete(self, request: CompletionRequest) -> CompletionResponse:
        require_key(self)
        if self.uses_responses(request):
            return self.complete_responses(request)
        try:
            create = self.client().chat.completions.with_raw_response.create
            raw = create(**self.build_kwargs(request))
            completion = raw.parse()
        except (openai.OpenAIError, ValueError) as exc:  # ValueError: a 200 with bad JSON
            raise error_from_sdk(openai, exc) from exc
        return response_from_completion(completion, raw.headers)

    async def acomplete(self, request: CompletionRequest) -> CompletionResponse:
        require_key(self)
        if self.uses_responses(request):
            return await self.acomplete_responses(request)
        try:
            create = self.async_client().chat.completions.with_raw_response.create
            raw = await create(**self.build_kwargs(request))
            completion = raw.parse()
        except (openai.OpenAIError, ValueError) as exc:
            raise error_from_sdk(openai, exc) from exc
        return response_from_completion(completion, raw.headers)

    def stream(self, request: CompletionRequest) -> Iterator[StreamItem]:
        require_key(self)
        if self.uses_responses(request):
            yield from self.stream_responses(request)
            return
        kwargs = self.build_kwargs(request)
        kwargs.update(stream=True, stream_options={"include_usage": True})
        try:
            yield from read_openai(self.client().chat.completions.create(**kwargs))
        except (openai.OpenAIError, ValueError, httpx2.HTTPError) as exc:
            raise stream_error(openai, exc) from exc

    # -- the Responses API (openai_responses.py) -------------------------------------

    def complete_responses(self, request: CompletionRequest) -> CompletionResponse:
        try:
            create = self.client().responses.with_raw_response.create
            raw = create(**responses_api.build_kwargs(request))
            response = raw.parse()
        except (openai.OpenAIError, ValueError) as exc:
            raise error_from_sdk(openai, exc) from exc
        return responses_api.response_from_responses(response, raw.headers)

    async def acomplete_responses(self, request: CompletionRequest) -> CompletionResponse:
        try:
            create = self.async_client().responses.with_raw_response.create
            raw = await create(**responses_api.build_kwargs(request))
            response = raw.parse()
        except (openai.OpenAIError, ValueError) as exc:
            raise error_from_sdk(openai, exc) from exc
        return responses_api.response_from_responses(response, raw.headers)

    def stream_responses(self, request: CompletionRequest) -> Iterator[StreamItem]:
        kwargs = responses_api.build_kwargs(request)
        try:
            yield from responses_api.read_stream(
                self.client().responses.create(**kwargs, stream=True)
            )
        except (openai.OpenAIError, ValueError, httpx2.HTTPError) as exc:
            raise stream_error(openai, exc) from exc

    # -- the Batch API: a JSONL file of requests, answered within 24 hours -----------

    supports_batch = True

    def submit_batch(self, items: Sequence[tuple[str, CompletionRequest]]) -> str:
        require_key(self)
        # A batch has one endpoint: the Responses API's when any request needs it.
        responses = any(self.uses_responses(request) for _id, request in items)
        endpoint: BatchEndpoint = responses_api.BATCH_ENDPOINT if responses else BATCH_ENDPOINT
        build = responses_api.build_kwargs if responses else self.build_kwargs
        lines = [
            json.dumps(
                {
                    "custom_id": custom_id,
                    "method": "POST",
                    "url": endpoint,
                    "body": request_body(build(request)),
                }
            )
            for custom_id, request in items
        ]
        client = self.client().with_options(timeout=max(self.timeout(), UPLOAD_TIMEOUT))
        try:
            uploaded = client.files.create(
                file=("requests.jsonl", "\n".join(lines).encode() + b"\n", "application/jsonl"),
                purpose="batch",
            )
            batch = client.batches.create(
                input_file_id=uploaded.id, endpoint=endpoint, completion_window="24h"
            )
        except (openai.OpenAIError, ValueError) as exc:
            raise error_from_sdk(openai, exc) from exc
        return batch.id

    def batch_state(self, batch_id: str) -> BatchState:
        batch = self.retrieve_batch(batch_id)
        if batch.status != "failed":
            return BatchState(ended=batch.status in BATCH_ENDED)
        errors = batch.errors.data if batch.errors and batch.errors.data else []
        reasons = "; ".join(str(e.message or e.code) for e in errors) or "no reason given"
        return BatchState(
            ended=True, error=ProviderError(ErrorCode.BAD_REQUEST, f"The batch failed: {reasons}")
        )

    def batch_results(
        self, batch_id: str, requests: Mapping[str, CompletionRequest]
    ) -> dict[str, CompletionResponse | ProviderError]:
        batch = self.retrieve_batch(batch_id)
        results: dict[str, CompletionResponse | ProviderError] = {}
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            try:
                text = self.client().files.content(file_id).text
            except (openai.OpenAIError, ValueError) as exc:
                raise error_from_sdk(openai, exc) from exc
            for line in text.splitlines():
                if line.strip():
                    custom_id, outcome = read_batch_line(line)
                    results[custom_id] = outcome
        return results

    def retrieve_batch(self, batch_id: str) -> Any:
        require_key(self)
        try:
            return self.client().batches.retrieve(batch_id)
        except (openai.OpenAIError, ValueError) as exc:
            raise error_from_sdk(openai, exc) from exc


def read_batch_line(line: str) -> tuple[str, CompletionResponse | ProviderError]:
    """(custom id, answer or error) of one line of a batch's output or error file."""
    try:
        entry = json.loads(line)
        custom_id = str(entry["custom_id"])
    except (ValueError, KeyError, TypeError) as exc:
        return "", unreadable(exc)
    response = entry.get("response") or {}
    status = response.get("status_code")
    if status == 200:
        try:
            return custom_id, batched(response_from_body(response["body"]))
        except ReportedNumbersError as refused:
            batched(refused.answer)  # charged at the batch rate, as an answer would be
            return custom_id, refused
        except ProviderError as error:
            return custom_id, error
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            return custom_id, unreadable(exc)
    if status:
        return custom_id, status_error(int(status), response.get("body"))
    failure = entry.get("error") or {}
    if failure.get("code") in ("batch_expired", "batch_cancelled"):
        return custom_id, not_run(str(failure["code"]))
    return custom_id, typed_error(failure)


def response_from_body(body: dict[str, Any]) -> CompletionResponse:
    """A batch line's answer: a Response (``/v1/responses``) or a ChatCompletion."""
    if body.get("object") == "response":
        return responses_api.response_from_body(body)
    return response_from_completion(ChatCompletion.construct(**body))


class AzureOpenAIProvider(OpenAIProvider):
    """Azure OpenAI: BASE_URL is the resource endpoint, the model is the deployment."""

    name = "azure"
    # Azure runs batches on "Global Batch" deployments with its own file endpoints.
    supports_batch = False

    def client_options(self) -> dict[str, Any]:
        return {
            "api_key": self.config.get("API_KEY") or "missing",
            "azure_endpoint": self.config.get("BASE_URL") or "",
            "api_version": self.api_version(),
            "timeout": self.timeout(),
            "max_retries": 0,
        }

    def api_version(self) -> str:
        return str(self.config.get("API_VERSION") or "2024-10-21")

    def client_key(self) -> tuple[Any, ...]:
        return (
            "azure",
            self.config.get("API_KEY"),
            self.config.get("BASE_URL"),
            self.api_version(),
        )

    def client(self) -> openai.OpenAI:
        return clients.get(self.client_key(), lambda: openai.AzureOpenAI(**self.client_options()))

    def async_client(self) -> openai.AsyncOpenAI:
        return clients.get(
            async_key(self.client_key()),
            lambda: openai.AsyncAzureOpenAI(**self.client_options()),
        )

    def max_tokens_param(self) -> str:
        return str(self.config.get("MAX_TOKENS_PARAM") or "max_completion_tokens")

    def probe(self) -> None:
        return None  # Azure lists models per resource, not per deployment: no cheap check
