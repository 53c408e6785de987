"""Model prices and the exact cost of one call, in integer micro-dollars.

Prices are USD per 1M tokens, so one token costs ``price`` micro-dollars:
cost_micro = tokens * price, exact in Decimal. ``AI_FIELDS["PRICING"]``
overrides or adds models. See docs/quotas.md for the table's date and source.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from typing import Any

from ..conf import get_setting

logger = logging.getLogger("django_ai_fields")

PRICES_AS_OF = "2025-11-30"

# model: (input, cached input, cache write, output) USD per 1M tokens. Batch APIs
# charge BATCH_DISCOUNT of these. Cache write: Anthropic 5-minute cache writes;
# OpenAI has no cache-write surcharge.
PRICE_TABLE: dict[str, tuple[str, str, str, str]] = {
    # OpenAI
    "gpt-5": ("1.25", "0.125", "1.25", "10.00"),
    "gpt-5-mini": ("0.25", "0.025", "0.25", "2.00"),
    "gpt-5-nano": ("0.05", "0.005", "0.05", "0.40"),
    "gpt-4.1": ("2.00", "0.50", "2.00", "8.00"),
    "gpt-4.1-mini": ("0.40", "0.10", "0.40", "1.60"),
    "gpt-4.1-nano": ("0.10", "0.025", "0.10", "0.40"),
    "gpt-4o": ("2.50", "1.25", "2.50", "10.00"),
    "gpt-4o-mini": ("0.15", "0.075", "0.15", "0.60"),
    "o3": ("2.00", "0.50", "2.00", "8.00"),
    "o4-mini": ("1.10", "0.275", "1.10", "4.40"),
    # Anthropic
    "claude-opus-4-5": ("5.00", "0.50", "6.25", "25.00"),
    "claude-opus-4-1": ("15.00", "1.50", "18.75", "75.00"),
    "claude-sonnet-4-5": ("3.00", "0.30", "3.75", "15.00"),
    "claude-sonnet-4": ("3.00", "0.30", "3.75", "15.00"),
    "claude-haiku-4-5": ("1.00", "0.10", "1.25", "5.00"),
    "claude-3-5-haiku": ("0.80", "0.08", "1.00", "4.00"),
}
BATCH_DISCOUNT = Decimal("0.5")
ONE_MILLION = Decimal(1_000_000)


@dataclass(frozen=True)
class Price:
    input: Decimal
    cached_input: Decimal
    cache_write: Decimal
    output: Decimal


ZERO_PRICE = Price(Decimal(0), Decimal(0), Decimal(0), Decimal(0))
_warned: set[str] = set()


def _price_from_setting(entry: dict[str, Any]) -> Price:
    base = Decimal(str(entry["input"]))
    return Price(
        input=base,
        cached_input=Decimal(str(entry.get("cached_input", base))),
        cache_write=Decimal(str(entry.get("cache_write", base))),
        output=Decimal(str(entry["output"])),
    )


_BUILTIN = {name: Price(*map(Decimal, row)) for name, row in PRICE_TABLE.items()}


def price_for(model: str) -> Price | None:
    """Settings first, then the shipped table; exact name, else the longest
    prefix followed by "-" (so dated snapshots like gpt-4o-2024-08-06 match)."""
    overrides = get_setting("PRICING") or {}
    for table in ({k: _price_from_setting(v) for k, v in overrides.items()}, _BUILTIN):
        if model in table:
            return table[model]
        prefixes = [name for name in table if model.startswith(name + "-")]
        if prefixes:
            return table[max(prefixes, key=len)]
    return None


def known_price(model: str) -> Price:
    """The model's price, or zero with one warning per model and process."""
    price = price_for(model)
    if price is None:
        if model not in _warned:
            _warned.add(model)
            logger.warning(
                "No price known for model %r: its calls cost 0. Add it to AI_FIELDS['PRICING'].",
                model,
            )
        return ZERO_PRICE
    return price


def cost_micro(
    model: str,
    *,
    input_tokens: int,
    output_tokens: int,
    cached_tokens: int = 0,
    cache_creation_tokens: int = 0,
    batch: bool = False,
) -> Decimal:
    """Exact cost in micro-dollars. ``input_tokens`` counts ALL input tokens,
    cache reads and writes included (providers are normalised to that)."""
    price = known_price(model)
    uncached = max(0, input_tokens - cached_tokens - cache_creation_tokens)
    micro = (
        uncached * price.input
        + cached_tokens * price.cached_input
        + cache_creation_tokens * price.cache_write
        + output_tokens * price.output
    )
    return micro * BATCH_DISCOUNT if batch else micro


def micro_to_usd(micro: Decimal) -> Decimal:
    return (micro / ONE_MILLION).quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)


def usd_to_micro(usd: Decimal | float | str) -> int:
    return int((Decimal(str(usd)) * ONE_MILLION).to_integral_value(rounding=ROUND_CEILING))


def ceil_micro(micro: Decimal) -> int:
    return int(micro.to_integral_value(rounding=ROUND_CEILING))
