"""Reading the billing details of a provider's answer: cache writes by duration,
reasoning tokens, the service tier, and a gateway's own cost figure."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

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
