"""Bounds on the numbers a provider reports with an answer: token counts, a
gateway's cost, hosted tool uses (and the length of the model name it claims).

Provider answers are untrusted input (docs/security.md). A count must be a whole
number from 0 to ``MAX_TOKENS`` (``MAX_TOOL_USES`` for tool uses), a part of a
count (cached, cache-write, reasoning tokens) no larger than the count, and a
cost a finite amount from 0 to ``MAX_GATEWAY_COST_USD``. An answer with any
other number is refused: ``ReportedNumbersError`` (``invalid_output``), which
carries the answer with those numbers replaced, so the call is still logged and
charged at the app's own figures (calling/pipeline.py, ``billed_answer``).

The adapters read every number through one ``Reported`` per answer; ``checked()``
applies the same bounds to a response any provider class returned.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from typing import Any

from .base import INPUT_TOKENS, OUTPUT_TOKENS, CompletionResponse, ReportedNumbersError

# Per count and call: above any model's context window, and far below what the
# usage columns (and the sums on a job) hold.
MAX_TOKENS = 10_000_000
MAX_TOOL_USES = 1_000
# One call costing more than this is no price, whatever a gateway says.
MAX_GATEWAY_COST_USD = Decimal(10_000)
# AIUsage.gateway_cost_usd's decimal places, and AIUsage.reported_model's length.
COST_PLACES = Decimal("1e-10")
MODEL_NAME_CHARS = 100
# A shown value is cut to this many characters (a number may have thousands of digits).
SHOWN_CHARS = 40

CACHED = "cached_tokens"
CACHE_WRITE = "cache_creation_tokens"
CACHE_WRITE_1H = "cache_write_1h_tokens"
REASONING = "reasoning_tokens"
COUNTS = (INPUT_TOKENS, OUTPUT_TOKENS, CACHED, CACHE_WRITE, CACHE_WRITE_1H, REASONING)


class Reported:
    """Reads the numbers of one answer, noting each that is out of range."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.unknown: set[str] = set()

    def count(self, field: str, value: Any, label: str = "", *, limit: int = MAX_TOKENS) -> int:
        """A count as an int (absent: 0); 0 when out of range, noted under ``field``."""
        if value is None:
            return 0
        number = whole_number(value)
        if number is None or not 0 <= number <= limit:
            self.refuse(field, f"{label or field}={shown(value)}")
            return 0
        return number

    def cost(self, value: Any, label: str) -> Decimal | None:
        """A cost in USD (absent: None); None when out of range."""
        if value is None:
            return None
        amount = decimal_amount(value)
        if amount is None or not 0 <= amount <= MAX_GATEWAY_COST_USD:
            self.refuse("gateway_cost_usd", f"{label}={shown(value)}")
            return None
        return amount.quantize(COST_PLACES).copy_abs()  # copy_abs: "-0" is 0

    def refuse(self, field: str, problem: str) -> None:
        self.problems.append(problem)
        self.unknown.add(field)

    def check(self, response: CompletionResponse) -> CompletionResponse:
        """The response, once its final numbers are in range and its parts within
        their counts; raises ReportedNumbersError when any number was not."""
        for field in COUNTS:
            setattr(response, field, self.count(field, getattr(response, field)))
        if INPUT_TOKENS in self.unknown:  # parts of a count nobody knows are not known either
            response.cached_tokens = response.cache_creation_tokens = 0
            response.cache_write_1h_tokens = 0
        if OUTPUT_TOKENS in self.unknown:
            response.reasoning_tokens = 0
        self.parts_within(response)
        response.gateway_cost_usd = self.cost(response.gateway_cost_usd, "gateway_cost_usd")
        response.tool_uses = {
            str(tool): self.count(str(tool), uses, limit=MAX_TOOL_USES)
            for tool, uses in response.tool_uses.items()
        }
        response.model = str(response.model or "")[:MODEL_NAME_CHARS]
        if self.problems:
            raise ReportedNumbersError(self.problems, response, self.unknown)
        return response

    def parts_within(self, response: CompletionResponse) -> None:
        """A part above its count is refused and dropped: the count is then priced
        as plain input (or output), the dearer reading of cache reads."""
        if response.cached_tokens > response.input_tokens:
            self.drop(response, CACHED, INPUT_TOKENS)
        if response.cached_tokens + response.cache_creation_tokens > response.input_tokens:
            self.drop(response, CACHE_WRITE, INPUT_TOKENS)
        if response.cache_write_1h_tokens > response.cache_creation_tokens:
            self.drop(response, CACHE_WRITE_1H, CACHE_WRITE)
        if response.reasoning_tokens > response.output_tokens:
            self.drop(response, REASONING, OUTPUT_TOKENS)

    def drop(self, response: CompletionResponse, part: str, whole: str) -> None:
        self.refuse(part, f"{part}={getattr(response, part)} > {whole}={getattr(response, whole)}")
        setattr(response, part, 0)
        if part == CACHE_WRITE:
            response.cache_write_1h_tokens = 0


def checked(response: CompletionResponse) -> CompletionResponse:
    """Any provider's response under the same bounds (the adapters' are already)."""
    return Reported().check(response)


def whole_number(value: Any) -> int | None:
    """A whole number as an int (10.0 and "10" too), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value)
    return None


def decimal_amount(value: Any) -> Decimal | None:
    """A finite amount as a Decimal, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and len(value) > SHOWN_CHARS:
        return None
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError, TypeError):
        return None
    return amount if amount.is_finite() else None


def shown(value: Any) -> str:
    """A reported value for an error message: short, whatever its size."""
    if isinstance(value, int) and value.bit_length() > 128:
        digits = int(value.bit_length() * math.log10(2)) + 1
        return f"<an integer of about {digits} digits>"
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."
