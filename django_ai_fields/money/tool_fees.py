"""Fees of hosted tools (OpenAI Responses API), charged per use on top of tokens.

``AI_FIELDS["TOOL_PRICING"]`` holds USD per use of each tool; the defaults are
OpenAI's list prices (web search $10 per 1,000 calls, file search $2.50 per
1,000 calls, code interpreter $0.03 per container). A use of a tool with no price
costs 0 and logs one warning. Batch discounts do not apply to tool fees.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from decimal import Decimal

from ..conf import get_setting
from .pricing import ONE_MILLION, micro_to_usd

logger = logging.getLogger("django_ai_fields")
_warned: set[str] = set()


def fee_micro(uses: Mapping[str, int]) -> Decimal:
    """Fees of these tool uses, in micro-dollars (exact)."""
    prices = get_setting("TOOL_PRICING") or {}
    total = Decimal(0)
    for tool, count in uses.items():
        if tool not in prices:
            if tool not in _warned:
                _warned.add(tool)
                logger.warning("No price known for hosted tool %r: its uses cost 0.", tool)
            continue
        total += Decimal(str(prices[tool])) * ONE_MILLION * int(count)
    return total


def fee_usd(uses: Mapping[str, int]) -> Decimal:
    return micro_to_usd(fee_micro(uses)) if uses else Decimal(0)
