"""Streamed answers: read the SDKs' server-sent events into text deltas and one
final CompletionResponse, and classify errors that arrive in the middle of a stream.

A provider's ``stream(request)`` yields ``str`` deltas as they arrive, then
exactly one ``CompletionResponse`` holding the whole text and the usage the
stream reported at its end.

A gateway may answer a ``stream=True`` request with a plain JSON body (LiteLLM's
proxy does in some modes); the SDKs would read that as an empty stream. Such a
body is read as the normal, non-streamed response it is (``plain_json_body``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from types import SimpleNamespace
from typing import Any

import httpx2

from ..codes import ErrorCode
from .base import CompletionResponse, ProviderError, error_from_sdk
from .usage import (
    anthropic_response,
    openai_response,
    response_from_completion,
    response_from_message,
    response_headers,
)

StreamItem = str | CompletionResponse

# Error types (Anthropic ``error.type``; OpenAI ``error.type`` / ``error.code``) an
# error event carries in the middle of a 200 stream, where no HTTP status tells.
STREAM_ERROR_TYPES = {
    "rate_limit_error": ErrorCode.RATE_LIMITED,
    "rate_limit_exceeded": ErrorCode.RATE_LIMITED,
    "requests": ErrorCode.RATE_LIMITED,
    "tokens": ErrorCode.RATE_LIMITED,
    "overloaded_error": ErrorCode.PROVIDER_UNAVAILABLE,
    "api_error": ErrorCode.PROVIDER_UNAVAILABLE,
    "server_error": ErrorCode.PROVIDER_UNAVAILABLE,
    "service_unavailable": ErrorCode.PROVIDER_UNAVAILABLE,
    "timeout_error": ErrorCode.TIMEOUT,
    "authentication_error": ErrorCode.AUTH,
    "invalid_api_key": ErrorCode.AUTH,
    "permission_error": ErrorCode.AUTH,
    "permission_denied": ErrorCode.AUTH,
    "invalid_request_error": ErrorCode.BAD_REQUEST,
    "request_too_large": ErrorCode.BAD_REQUEST,
    "not_found_error": ErrorCode.BAD_REQUEST,
}


def stream_error(sdk: Any, exc: Exception) -> ProviderError:
    """Classify an exception raised while opening or reading a stream."""
    if isinstance(exc, httpx2.TimeoutException):
        return ProviderError(ErrorCode.TIMEOUT, "The provider stopped sending in time.")
    if isinstance(exc, httpx2.TransportError):
        return ProviderError(ErrorCode.PROVIDER_UNAVAILABLE, f"The stream broke off: {exc!r}")
    mid_stream = isinstance(exc, sdk.APIError) and getattr(exc, "status_code", 200) == 200
    if mid_stream and not isinstance(exc, sdk.APIConnectionError):
        kind, message = error_event(getattr(exc, "body", None))
        code = STREAM_ERROR_TYPES.get(kind, ErrorCode.PROVIDER_UNAVAILABLE)
        return ProviderError(code, f"Error in the stream ({kind or 'unknown'}): {message}")
    return error_from_sdk(sdk, exc)


def error_event(body: Any) -> tuple[str, str]:
    """(type or code, message) of an error event body, either provider's shape."""
    if not isinstance(body, dict):
        return "", str(body or "")
    nested = body.get("error")
    error = nested if isinstance(nested, dict) else body
    kind = error.get("code") if error.get("code") in STREAM_ERROR_TYPES else error.get("type")
    return str(kind or ""), str(error.get("message") or "")


def plain_json_body(stream: Any) -> Any:
    """The decoded body when the SDK stream's HTTP response is ``application/json``
    instead of server-sent events; None for a real event stream."""
    response = getattr(stream, "response", None)
    content_type = str(getattr(response, "headers", {}).get("content-type", "")).lower()
    if response is None or "json" not in content_type or "event-stream" in content_type:
        return None
    try:
        body = json.loads(response.read() or b"null")
    finally:
        response.close()
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        kind, message = error_event(body)
        code = STREAM_ERROR_TYPES.get(kind, ErrorCode.PROVIDER_UNAVAILABLE)
        raise ProviderError(code, f"Error instead of a stream ({kind or 'unknown'}): {message}")
    if not isinstance(body, dict):
        raise ProviderError(ErrorCode.PROVIDER_UNAVAILABLE, "The answer is not a JSON object.")
    return body


def whole(response: CompletionResponse) -> Iterator[StreamItem]:
    """A complete response as a stream: its text as one delta, then the response."""
    if response.text:
        yield response.text
    yield response


# -- OpenAI chat completion chunks -----------------------------------------------------


def read_openai(chunks: Iterable[Any]) -> Iterator[StreamItem]:
    """Chunks of ``chat.completions.create(stream=True, stream_options=
    {"include_usage": True})``: content deltas, then a usage-only chunk
    (or a plain chat completion body, see ``plain_json_body``)."""
    headers = response_headers(chunks)
    body = plain_json_body(chunks)
    if body is not None:
        from openai.types.chat import ChatCompletion

        # Read without validation, as batch lines are: the numbers are checked on reading.
        completion = ChatCompletion.construct(**body)
        yield from whole(response_from_completion(completion, headers))
        return
    parts: list[str] = []
    usage: Any = None
    finish_reason = model = ""
    for chunk in chunks:
        model = getattr(chunk, "model", "") or model
        usage = getattr(chunk, "usage", None) or usage
        for choice in getattr(chunk, "choices", None) or []:
            delta = getattr(choice.delta, "content", None) if choice.delta else None
            if delta:
                parts.append(delta)
                yield delta
            finish_reason = choice.finish_reason or finish_reason
    yield openai_response(
        "".join(parts), usage, finish_reason=finish_reason, model=model, headers=headers
    )


# -- Anthropic message events -----------------------------------------------------------


class AnthropicStreamState:
    """What the events said so far: text, tool input JSON, usage, stop reason."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.tool_json: list[str] | None = None
        # The usage fields as sent (read under their bounds at the end).
        self.usage: dict[str, Any] = {}
        self.stop_reason = ""
        self.model = ""

    def read(self, event: Any) -> str:
        """Take one event in; returns the text delta it carried ("" if none)."""
        kind = getattr(event, "type", "")
        if kind == "message_start":
            self.model = event.message.model or ""
            self.add_usage(event.message.usage)
        elif kind == "content_block_start" and event.content_block.type == "tool_use":
            self.tool_json = []
        elif kind == "content_block_delta":
            return self.add_delta(event.delta)
        elif kind == "message_delta":
            self.stop_reason = event.delta.stop_reason or self.stop_reason
            self.add_usage(event.usage)
        return ""

    def add_delta(self, delta: Any) -> str:
        if delta.type == "text_delta":
            self.text.append(delta.text)
            return str(delta.text)
        if delta.type == "input_json_delta" and self.tool_json is not None:
            self.tool_json.append(delta.partial_json)
            return str(delta.partial_json)
        return ""

    def add_usage(self, usage: Any) -> None:
        """Counts are cumulative: a later event's value replaces an earlier one."""
        for name in (
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
            "cache_creation",
        ):
            value = getattr(usage, name, None)
            if value is not None:
                self.usage[name] = value

    def response(self, *, wrapped: bool, headers: Any = None) -> CompletionResponse:
        text = "".join(self.text)
        if self.tool_json is not None:
            data = json.loads("".join(self.tool_json) or "{}")
            text = json.dumps(data["value"] if wrapped else data)
        return anthropic_response(
            text,
            SimpleNamespace(**self.usage),
            stop_reason=self.stop_reason,
            model=self.model,
            headers=headers,
        )


def read_anthropic(events: Iterable[Any], *, wrapped: bool) -> Iterator[StreamItem]:
    """Events of ``messages.create(stream=True)``; a forced tool's JSON streams as
    ``input_json_delta`` pieces (or a plain message body, see ``plain_json_body``)."""
    headers = response_headers(events)
    body = plain_json_body(events)
    if body is not None:
        from anthropic.types import Message

        message = Message.construct(**body)  # read as the batch results are
        yield from whole(response_from_message(message, wrapped=wrapped, headers=headers))
        return
    state = AnthropicStreamState()
    for event in events:
        delta = state.read(event)
        if delta:
            yield delta
    yield state.response(wrapped=wrapped, headers=headers)


def chunked(text: str, pieces: int) -> list[str]:
    """``text`` cut into at most ``pieces`` parts at word boundaries (offline streams)."""
    if not text:
        return []
    words = text.split(" ")
    size = max(1, -(-len(words) // pieces))
    return [
        " ".join(words[i : i + size]) + (" " if i + size < len(words) else "")
        for i in range(0, len(words), size)
    ]
