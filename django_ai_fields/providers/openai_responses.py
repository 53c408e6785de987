"""The OpenAI Responses API (``client.responses.create``): the OpenAI provider's
second mode, chosen by ``PROVIDERS["openai"]["API"] = "responses"``, a field's
``api="responses"``, or any hosted tool (tools exist only in this API).

Chat Completions stays the default: OpenAI-compatible servers rarely speak this API.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Final

from openai.types.responses import Response

from ..codes import ErrorCode
from .attachments import responses_content
from .base import INPUT_TOKENS, OUTPUT_TOKENS, CompletionRequest, CompletionResponse, ProviderError
from .reported import CACHED, REASONING, Reported
from .streams import STREAM_ERROR_TYPES, StreamItem
from .tools import CHAT, RESPONSES, billable_uses, call_summary
from .usage import gateway_cost, response_headers

BATCH_ENDPOINT: Final = "/v1/responses"


def uses_responses(config: dict[str, Any], request: CompletionRequest) -> bool:
    """Whether this request goes to the Responses API."""
    if request.tools:
        return True
    return (request.api or config.get("API") or CHAT) == RESPONSES


def build_kwargs(request: CompletionRequest) -> dict[str, Any]:
    """Keyword arguments of ``client.responses.create`` for one request."""
    kwargs: dict[str, Any] = {
        "model": request.model,
        "instructions": request.system,
        "input": [
            {"role": "user", "content": responses_content(request.prompt, request.attachments)}
        ],
        "max_output_tokens": request.max_tokens,
        # Nothing is kept at OpenAI for later turns: each generation stands alone.
        "store": False,
    }
    if request.temperature is not None:
        kwargs["temperature"] = request.temperature
    if request.json_schema:
        schema_format = {"type": "json_schema", "name": "output", "schema": request.json_schema}
        kwargs["text"] = {"format": schema_format}
    elif request.json_output:
        kwargs["text"] = {"format": {"type": "json_object"}}
    if request.tools:
        kwargs["tools"] = request.tools
    kwargs.update(request.options)
    return kwargs


def response_from_responses(response: Any, headers: Any = None) -> CompletionResponse:
    """A Response object (or one built from a batch line) as a CompletionResponse,
    its numbers checked (``headers``: the HTTP response's, for a gateway's cost)."""
    if getattr(response, "status", None) == "failed":
        error = getattr(response, "error", None)
        message = getattr(error, "message", None) or "The response failed."
        raise ProviderError(ErrorCode.PROVIDER_UNAVAILABLE, f"The response failed: {message}")
    output = list(getattr(response, "output", None) or [])
    usage = getattr(response, "usage", None)
    input_details = getattr(usage, "input_tokens_details", None)
    output_details = getattr(usage, "output_tokens_details", None)
    numbers = Reported()
    result = CompletionResponse(
        text=output_text(output),
        # input_tokens already includes the cached tokens (as Chat Completions' prompt_tokens).
        input_tokens=numbers.count(INPUT_TOKENS, getattr(usage, "input_tokens", None)),
        output_tokens=numbers.count(OUTPUT_TOKENS, getattr(usage, "output_tokens", None)),
        cached_tokens=numbers.count(CACHED, getattr(input_details, "cached_tokens", None)),
        reasoning_tokens=numbers.count(
            REASONING, getattr(output_details, "reasoning_tokens", None)
        ),
        finish_reason=finish_reason(response),
        model=str(getattr(response, "model", "") or ""),
        gateway_cost_usd=gateway_cost(numbers, usage, headers),
        tool_calls=[s for s in map(call_summary, output) if s is not None],
        tool_uses=billable_uses(output, getattr(response, "tool_usage", None), numbers),
    )
    return numbers.check(result)


def output_text(output: Iterable[Any]) -> str:
    """The text of every message item's ``output_text`` parts (SDK's ``output_text``)."""
    texts = []
    for item in output:
        if getattr(item, "type", "") == "message":
            for part in getattr(item, "content", None) or []:
                if getattr(part, "type", "") == "output_text" and part.text is not None:
                    texts.append(part.text)
    return "".join(texts)


def finish_reason(response: Any) -> str:
    """ "length" for an answer cut off at max_output_tokens (as Chat Completions says)."""
    if getattr(response, "status", None) != "incomplete":
        return "stop"
    reason = getattr(getattr(response, "incomplete_details", None), "reason", None)
    return "length" if reason == "max_output_tokens" else str(reason or "incomplete")


def read_stream(events: Iterable[Any]) -> Iterator[StreamItem]:
    """Events of ``responses.create(stream=True)``: ``response.output_text.delta``
    pieces, then the final response of ``response.completed`` / ``.incomplete``."""
    final: Any = None
    parts: list[str] = []
    headers = response_headers(events)
    for event in events:
        kind = getattr(event, "type", "")
        if kind == "response.output_text.delta":
            parts.append(event.delta)
            yield event.delta
        elif kind in ("response.completed", "response.incomplete", "response.failed"):
            final = event.response
        elif kind == "error":
            raise error_event_error(event)
    if final is None:
        raise ProviderError(ErrorCode.PROVIDER_UNAVAILABLE, "The stream ended without a response.")
    response = response_from_responses(final, headers)
    response.text = response.text or "".join(parts)
    yield response


def error_event_error(event: Any) -> ProviderError:
    """An ``error`` event in the middle of a Responses stream, classified by its code."""
    code = str(getattr(event, "code", None) or "")
    message = str(getattr(event, "message", None) or "")
    kind = STREAM_ERROR_TYPES.get(code, ErrorCode.PROVIDER_UNAVAILABLE)
    return ProviderError(kind, f"Error in the stream ({code or 'unknown'}): {message}")


def response_from_body(body: dict[str, Any]) -> CompletionResponse:
    """A batch line's response body (JSON) read without validation, as the chat lines are."""
    return response_from_responses(Response.construct(**body))
