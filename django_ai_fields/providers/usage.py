"""Reading a provider's answer: the SDKs' completion and message objects as a
CompletionResponse, with their billing details (cache writes by duration,
reasoning tokens, the service tier, a gateway's own cost figure). Below the
adapters and the stream readers, which both use it."""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any

from .base import CompletionResponse, ProviderError

# LiteLLM's proxy reports what it charged for a call in this response header.
LITELLM_COST_HEADER = "x-litellm-response-cost"


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def gateway_cost(value: Any) -> Decimal | None:
    """A gateway's cost figure (USD) as a Decimal; None when absent or unreadable."""
    if value is None or isinstance(value, bool):
        return None
    try:
        cost = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return cost if cost.is_finite() and cost >= 0 else None


def openai_extras(completion: Any, usage: Any, headers: Any = None) -> dict[str, Any]:
    """Reasoning tokens (a part of completion_tokens), the service tier, and the
    gateway's cost: OpenRouter's ``usage.cost`` or LiteLLM's response header."""
    details = getattr(usage, "completion_tokens_details", None) if usage else None
    cost = gateway_cost(getattr(usage, "cost", None)) if usage else None
    if cost is None and headers is not None:
        cost = gateway_cost(headers.get(LITELLM_COST_HEADER))
    return {
        "reasoning_tokens": _int(getattr(details, "reasoning_tokens", 0)) if details else 0,
        "service_tier": str(getattr(completion, "service_tier", "") or ""),
        "gateway_cost_usd": cost,
    }


def anthropic_cache_write_1h(usage: Any) -> int:
    """Input tokens written to the 1-hour cache (priced 2x input; 5-minute: 1.25x)."""
    creation = getattr(usage, "cache_creation", None)
    if isinstance(creation, dict):
        return _int(creation.get("ephemeral_1h_input_tokens"))
    return _int(getattr(creation, "ephemeral_1h_input_tokens", 0)) if creation else 0


def anthropic_service_tier(usage: Any) -> str:
    tier = str(getattr(usage, "service_tier", "") or "")
    return "" if tier in ("standard", "batch") else tier


def response_from_completion(completion: Any, headers: Any = None) -> CompletionResponse:
    if not getattr(completion, "choices", None):
        raise ProviderError("provider_unavailable", "The provider answered with no choices.")
    choice = completion.choices[0]
    usage = completion.usage
    details = getattr(usage, "prompt_tokens_details", None) if usage else None
    return CompletionResponse(
        text=choice.message.content or "",
        # prompt_tokens already includes the cached tokens.
        input_tokens=usage.prompt_tokens if usage else 0,
        output_tokens=usage.completion_tokens if usage else 0,
        cached_tokens=(getattr(details, "cached_tokens", 0) or 0) if details else 0,
        finish_reason=choice.finish_reason or "",
        model=completion.model or "",
        **openai_extras(completion, usage, headers),
    )


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
        cache_write_1h_tokens=anthropic_cache_write_1h(usage),
        service_tier=anthropic_service_tier(usage),
        finish_reason="length"
        if message.stop_reason == "max_tokens"
        else message.stop_reason or "",
        model=message.model or "",
    )
