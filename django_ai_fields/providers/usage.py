"""Reading a provider's answer: the SDKs' completion and message objects as a
CompletionResponse, with their billing details (cache writes by duration,
reasoning tokens, the service tier, a gateway's own cost figure). Below the
adapters and the stream readers, which both use it. Every number is read
through ``reported.Reported``, under its bounds."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from .base import INPUT_TOKENS, OUTPUT_TOKENS, CompletionResponse, ProviderError
from .reported import CACHE_WRITE, CACHE_WRITE_1H, CACHED, REASONING, Reported

# LiteLLM's proxy reports what it charged for a call in this response header.
LITELLM_COST_HEADER = "x-litellm-response-cost"


def gateway_cost(numbers: Reported, usage: Any, headers: Any = None) -> Decimal | None:
    """What a gateway says it charged (USD): OpenRouter's ``usage.cost``, else
    LiteLLM's response header; None when neither says."""
    cost = numbers.cost(getattr(usage, "cost", None), "usage.cost")
    if cost is None and headers is not None:
        cost = numbers.cost(headers.get(LITELLM_COST_HEADER), LITELLM_COST_HEADER)
    return cost


def response_headers(stream: Any) -> Any:
    """The HTTP response headers of an SDK stream (or raw response); None if unknown."""
    return getattr(getattr(stream, "response", None), "headers", None)


def openai_response(
    text: str,
    usage: Any,
    *,
    finish_reason: str,
    model: str,
    service_tier: str = "",
    headers: Any = None,
) -> CompletionResponse:
    """A Chat Completions answer (whole or streamed) with its usage, checked."""
    numbers = Reported()
    details = getattr(usage, "prompt_tokens_details", None)
    output_details = getattr(usage, "completion_tokens_details", None)
    response = CompletionResponse(
        text=text,
        # prompt_tokens already includes the cached tokens.
        input_tokens=numbers.count(
            INPUT_TOKENS, getattr(usage, "prompt_tokens", None), "prompt_tokens"
        ),
        output_tokens=numbers.count(
            OUTPUT_TOKENS, getattr(usage, "completion_tokens", None), "completion_tokens"
        ),
        cached_tokens=numbers.count(CACHED, getattr(details, "cached_tokens", None)),
        # Output tokens spent on reasoning: a part of completion_tokens.
        reasoning_tokens=numbers.count(
            REASONING, getattr(output_details, "reasoning_tokens", None)
        ),
        finish_reason=finish_reason,
        model=model,
        service_tier=service_tier,
        gateway_cost_usd=gateway_cost(numbers, usage, headers),
    )
    return numbers.check(response)


def response_from_completion(completion: Any, headers: Any = None) -> CompletionResponse:
    if not getattr(completion, "choices", None):
        raise ProviderError("provider_unavailable", "The provider answered with no choices.")
    choice = completion.choices[0]
    return openai_response(
        choice.message.content or "",
        completion.usage,
        finish_reason=choice.finish_reason or "",
        model=completion.model or "",
        service_tier=str(getattr(completion, "service_tier", "") or ""),
        headers=headers,
    )


def anthropic_cache_write_1h(numbers: Reported, usage: Any) -> int:
    """Input tokens written to the 1-hour cache (priced 2x input; 5-minute: 1.25x)."""
    creation = getattr(usage, "cache_creation", None)
    if isinstance(creation, dict):
        value = creation.get("ephemeral_1h_input_tokens")
    else:
        value = getattr(creation, "ephemeral_1h_input_tokens", None)
    return numbers.count(CACHE_WRITE_1H, value, "ephemeral_1h_input_tokens")


def anthropic_service_tier(usage: Any) -> str:
    tier = str(getattr(usage, "service_tier", "") or "")
    return "" if tier in ("standard", "batch") else tier


def anthropic_response(
    text: str, usage: Any, *, stop_reason: str, model: str, headers: Any = None
) -> CompletionResponse:
    """A Messages API answer (whole or streamed) with its usage, checked."""
    numbers = Reported()
    raw_input = numbers.count(INPUT_TOKENS, getattr(usage, "input_tokens", None))
    cache_read = numbers.count(
        CACHED, getattr(usage, "cache_read_input_tokens", None), "cache_read_input_tokens"
    )
    cache_write = numbers.count(
        CACHE_WRITE,
        getattr(usage, "cache_creation_input_tokens", None),
        "cache_creation_input_tokens",
    )
    response = CompletionResponse(
        text=text,
        # Anthropic's input_tokens exclude cache reads and writes: add them back
        # so input_tokens means "all input tokens" for every provider.
        input_tokens=raw_input + cache_read + cache_write,
        output_tokens=numbers.count(OUTPUT_TOKENS, getattr(usage, "output_tokens", None)),
        cached_tokens=cache_read,
        cache_creation_tokens=cache_write,
        cache_write_1h_tokens=anthropic_cache_write_1h(numbers, usage),
        service_tier=anthropic_service_tier(usage),
        finish_reason="length" if stop_reason == "max_tokens" else stop_reason or "",
        model=model,
        gateway_cost_usd=gateway_cost(numbers, usage, headers),
    )
    return numbers.check(response)


def response_from_message(
    message: Any, *, wrapped: bool, headers: Any = None
) -> CompletionResponse:
    text = ""
    for block in message.content or []:
        if block.type == "tool_use":
            data = block.input["value"] if wrapped else block.input
            text = json.dumps(data)
            break
        if block.type == "text":
            text += block.text
    return anthropic_response(
        text,
        message.usage,
        stop_reason=message.stop_reason or "",
        model=message.model or "",
        headers=headers,
    )
