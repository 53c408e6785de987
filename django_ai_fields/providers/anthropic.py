"""Anthropic Messages API; JSON answers come back through a forced tool call."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import anthropic
import httpx2

from ..conf import get_setting
from .attachments import anthropic_content
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
from .batching import batched, not_run, request_body, typed_error, unreadable
from .streams import StreamItem, read_anthropic, stream_error
from .usage import response_from_message

TOOL_NAME = "record_output"
# A minimal valid message, parsed once by warm().
WARM_MESSAGE = {
    "id": "warm",
    "type": "message",
    "role": "assistant",
    "model": "warm",
    "content": [{"type": "text", "text": ""}],
    "stop_reason": "end_turn",
    "usage": {"input_tokens": 0, "output_tokens": 0},
}


class AnthropicProvider(Provider):
    name = "anthropic"
    idempotency_header = "Idempotency-Key"

    def client_options(self) -> dict[str, Any]:
        return {
            "api_key": self.config.get("API_KEY") or "missing",
            "base_url": self.config.get("BASE_URL") or None,
            "timeout": self.timeout(),
            # Jobs retry with backoff; the SDK would sleep a full Retry-After
            # (minutes) inside the worker.
            "max_retries": 0,
        }

    def client_key(self) -> tuple[Any, ...]:
        return (
            "anthropic",
            self.config.get("API_KEY"),
            self.config.get("BASE_URL"),
            self.timeout(),
        )

    def client(self) -> anthropic.Anthropic:
        return clients.get(self.client_key(), lambda: anthropic.Anthropic(**self.client_options()))

    def async_client(self) -> anthropic.AsyncAnthropic:
        return clients.get(
            async_key(self.client_key()),
            lambda: anthropic.AsyncAnthropic(**self.client_options()),
        )

    def warm(self) -> None:
        client = self.client()
        client.messages  # noqa: B018  (imports the resource's modules)
        warm_sdk_client(client, anthropic.types.Message, WARM_MESSAGE)

    def build_kwargs(self, request: CompletionRequest) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens,
            "system": system_blocks(request.system),
            "messages": [
                {"role": "user", "content": anthropic_content(request.prompt, request.attachments)}
            ],
        }
        if request.temperature is not None:
            kwargs["extra_body"] = {"temperature": request.temperature}
        if request.json_schema:
            kwargs["tools"] = [
                {
                    "name": TOOL_NAME,
                    "description": "Record the answer.",
                    "input_schema": tool_schema(request.json_schema),
                }
            ]
            kwargs["tool_choice"] = {"type": "tool", "name": TOOL_NAME}
        kwargs.update(request.options)
        return kwargs

    def probe(self) -> bool:
        require_key(self)
        try:
            self.client().models.list()
        except (anthropic.AnthropicError, ValueError) as exc:
            raise error_from_sdk(anthropic, exc) from exc
        return True

    def complete(self, request: CompletionRequest) -> CompletionResponse:
        require_key(self)
        try:
            # The raw response: its headers may carry a gateway's cost (usage.py).
            raw = self.client().messages.with_raw_response.create(**self.build_kwargs(request))
            message = raw.parse()
        except (anthropic.AnthropicError, ValueError) as exc:  # ValueError: bad JSON body
            raise error_from_sdk(anthropic, exc) from exc
        wrapped = needs_wrapping(request.json_schema)
        return response_from_message(message, wrapped=wrapped, headers=raw.headers)

    async def acomplete(self, request: CompletionRequest) -> CompletionResponse:
        require_key(self)
        try:
            create = self.async_client().messages.with_raw_response.create
            raw = await create(**self.build_kwargs(request))
            message = await raw.parse()
        except (anthropic.AnthropicError, ValueError) as exc:
            raise error_from_sdk(anthropic, exc) from exc
        wrapped = needs_wrapping(request.json_schema)
        return response_from_message(message, wrapped=wrapped, headers=raw.headers)

    def stream(self, request: CompletionRequest) -> Iterator[StreamItem]:
        require_key(self)
        wrapped = needs_wrapping(request.json_schema)
        try:
            events = self.client().messages.create(**self.build_kwargs(request), stream=True)
            yield from read_anthropic(events, wrapped=wrapped)
        except (anthropic.AnthropicError, ValueError, KeyError, httpx2.HTTPError) as exc:
            raise stream_error(anthropic, exc) from exc

    # -- Message Batches: up to 100,000 requests, answered within 24 hours -----------

    supports_batch = True

    def submit_batch(self, items: Sequence[tuple[str, CompletionRequest]]) -> str:
        require_key(self)
        requests = [
            {"custom_id": custom_id, "params": request_body(self.build_kwargs(request))}
            for custom_id, request in items
        ]
        try:
            return str(self.client().messages.batches.create(requests=requests).id)  # type: ignore[arg-type]
        except (anthropic.AnthropicError, ValueError) as exc:
            raise error_from_sdk(anthropic, exc) from exc

    def batch_state(self, batch_id: str) -> BatchState:
        require_key(self)
        try:
            batch = self.client().messages.batches.retrieve(batch_id)
        except (anthropic.AnthropicError, ValueError) as exc:
            raise error_from_sdk(anthropic, exc) from exc
        return BatchState(ended=batch.processing_status == "ended")

    def batch_results(
        self, batch_id: str, requests: Mapping[str, CompletionRequest]
    ) -> dict[str, CompletionResponse | ProviderError]:
        require_key(self)
        results: dict[str, CompletionResponse | ProviderError] = {}
        try:
            for item in self.client().messages.batches.results(batch_id):
                request = requests.get(item.custom_id)
                results[item.custom_id] = batch_outcome(item.result, request)
        except (anthropic.AnthropicError, ValueError, httpx2.HTTPError) as exc:
            raise stream_error(anthropic, exc) from exc
        return results


def batch_outcome(
    result: Any, request: CompletionRequest | None
) -> CompletionResponse | ProviderError:
    """One request's result in a Message Batch: its answer, or why it has none."""
    if result.type == "succeeded":
        wrapped = needs_wrapping(request.json_schema if request else None)
        try:
            return batched(response_from_message(result.message, wrapped=wrapped))
        except ReportedNumbersError as refused:
            batched(refused.answer)  # charged at the batch rate, as an answer would be
            return refused
        except (KeyError, TypeError, AttributeError) as exc:
            return unreadable(exc)
    if result.type == "errored":
        return typed_error(result.error.model_dump())
    return not_run(result.type)  # "expired" or "canceled"


def system_blocks(system: str) -> list[dict[str, Any]] | str:
    """The system message as a cached block: it is the same for every row of a
    field, so later calls read it from Anthropic's prompt cache at 10% of the
    input price (Anthropic caches prefixes of 1024+ tokens; shorter ones cost
    nothing extra). PROMPT_CACHING=False sends plain text."""
    if not system or not get_setting("PROMPT_CACHING"):
        return system
    return [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}]


def needs_wrapping(schema: dict[str, Any] | None) -> bool:
    return bool(schema) and schema.get("type") != "object"  # type: ignore[union-attr]


def tool_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Tool inputs must be objects: wrap any other schema in {"value": ...}."""
    if not needs_wrapping(schema):
        return schema
    return {"type": "object", "properties": {"value": schema}, "required": ["value"]}
