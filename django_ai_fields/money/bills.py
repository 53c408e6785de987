"""What one provider call costs, computed once per answer and then used three
times: logged on its AIUsage row, settled against the quotas, charged to the job.

Priced by the model the app asked for (or its PRICE_AS), never the name a provider
claims; cache reads and writes, the batch rate and the service tier apply; hosted
tool fees are added. A model without a known price costs ``None`` (unknown): its
usage row says so and the job's running total adds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from ..providers import CompletionResponse
from .pricing import ceil_micro, cost_micro, micro_to_usd
from .quotas import NOTHING, Demand
from .tool_fees import fee_micro, fee_usd


@dataclass(frozen=True)
class Bill:
    input_tokens: int = 0
    output_tokens: int = 0
    # Micro-dollars, exact; None: the model has no known price.
    cost_micro: Decimal | None = Decimal(0)
    # The priced model (named when its price is unknown); "" for a free answer.
    model: str = ""
    tool_uses: tuple[tuple[str, int], ...] = ()
    answered: bool = False

    @classmethod
    def for_answer(cls, model: str, response: CompletionResponse, *, provider: str = "") -> Bill:
        """The bill of an answered call."""
        tokens_in, tokens_out = response.input_tokens, response.output_tokens
        if not response.billable:  # a result-cache hit, or an answer nobody pays for
            return cls(tokens_in, tokens_out, answered=True)
        cost = cost_micro(
            model,
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            cached_tokens=response.cached_tokens,
            cache_creation_tokens=response.cache_creation_tokens,
            cache_write_1h_tokens=response.cache_write_1h_tokens,
            batch=response.batch,
            service_tier=response.service_tier,
            provider=provider,
        )
        uses = tuple(response.tool_uses.items())
        if cost is not None:
            cost += fee_micro(dict(uses))
        return cls(tokens_in, tokens_out, cost, model, uses, answered=True)

    @property
    def cost_usd(self) -> Decimal | None:
        """For the usage row: None when the price is unknown."""
        return None if self.cost_micro is None else micro_to_usd(self.cost_micro)

    @property
    def charged_usd(self) -> Decimal:
        """For the job's running total: an unknown price adds nothing."""
        return self.cost_usd or Decimal(0)

    @property
    def tool_cost_usd(self) -> Decimal:
        """The hosted tool fees inside ``cost_usd`` (nothing when the call cost nothing)."""
        return fee_usd(dict(self.tool_uses)) if self.cost_micro else Decimal(0)

    def demand(self) -> Demand:
        """What the call used, in quota units (a call with no answer used nothing)."""
        if not self.answered:
            return NOTHING
        cost = 0 if self.cost_micro is None else ceil_micro(self.cost_micro)
        return Demand(1, self.input_tokens + self.output_tokens, cost, self.model)


NO_ANSWER = Bill()
