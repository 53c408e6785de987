"""Anthropic Messages API; JSON answers come back through a forced tool call."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2

from ..conf import get_setting
from .base import (
    CompletionRequest,
    CompletionResponse,
    Provider,
    clients,
    error_from_sdk,
    require_key,
)
from .streams import StreamItem, read_anthropic, stream_error

TOOL_NAME = "record_output"


class AnthropicProvider(Provider):
    name = "anthropic"
    idempotency_header = "Idempotency-Key"

    def client(self) -> anthropic.Anthropic:
        key = ("anthropic", self.config.get("API_KEY"), self.config.get("BASE_URL"), self.timeout())
        return clients.get(
            key,
            lambda: anthropic.Anthropic(
                api_key=self.config.get("API_KEY") or "missing",
                base_url=self.config.get("BASE_URL") or None,
                timeout=self.timeout(),
                # Jobs retry with backoff; the SDK would sleep a full Retry-After
                # (minutes) inside the worker.
                max_retries=0,
            ),
        )

    def build_kwargs(self, request: CompletionRequest) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens,
            "system": system_blocks(request.system),
            "messages": [{"role": "user", "content": request.prompt}],
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
            message = self.client().messages.create(**self.build_kwargs(request))
        except (anthropic.AnthropicError, ValueError) as exc:  # ValueError: bad JSON body
            raise error_from_sdk(anthropic, exc) from exc
        return response_from_message(message, wrapped=needs_wrapping(request.json_schema))

    def stream(self, request: CompletionRequest) -> Iterator[StreamItem]:
        require_key(self)
        wrapped = needs_wrapping(request.json_schema)
        try:
            events = self.client().messages.create(**self.build_kwargs(request), stream=True)
            yield from read_anthropic(events, wrapped=wrapped)
        except (anthropic.AnthropicError, ValueError, KeyError, httpx2.HTTPError) as exc:
            raise stream_error(anthropic, exc) from exc


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


def response_from_message(message: Any, *, wrapped: bool) -> CompletionResponse:
    text = ""
    for block in message.content or []:
        if block.type == "tool_use":
            data = block.input["value"] if wrapped else block.input
            text = json.dumps(data)
            break
        if block.type == "text":
            text += block.text
    usage = message.usage
    cache_read = getattr(usage, "cache_read_input_tokens", 0) or 0
    cache_write = getattr(usage, "cache_creation_input_tokens", 0) or 0
    return CompletionResponse(
        text=text,
        # Anthropic's input_tokens exclude cache reads and writes: add them back
        # so input_tokens means "all input tokens" for every provider.
        input_tokens=usage.input_tokens + cache_read + cache_write,
        output_tokens=usage.output_tokens,
        cached_tokens=cache_read,
        cache_creation_tokens=cache_write,
        finish_reason="length"
        if message.stop_reason == "max_tokens"
        else message.stop_reason or "",
        model=message.model or "",
    )
