"""Model prices and the exact cost of one call, in integer micro-dollars.

Prices come from the ``genai-prices`` package (a maintained, dated price
database bundled with the package: no network at run time), priced at the
call's own time, with cache reads, 5-minute and 1-hour cache writes, the batch
discount and the service tier the provider reported. ``AI_FIELDS["PRICING"]``
overrides or adds models on top (USD per 1M tokens). A provider entry's
``PRICE_AS`` says which priced model a served name (a gateway's alias) really is.
A model priced nowhere has an unknown cost: ``None``, never a silent 0.
See docs/quotas.md.
"""

from __future__ import annotations

import datetime
import logging
import warnings
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from functools import cache
from typing import Any

import genai_prices
from genai_prices import data_snapshot

from ..conf import get_setting

logger = logging.getLogger("django_ai_fields")

# Batch APIs (OpenAI, Anthropic) charge half; used where the price data has no
# batch rate for a model, and for PRICING overrides.
BATCH_DISCOUNT = Decimal("0.5")
ONE_MILLION = Decimal(1_000_000)
# Our provider names that genai-prices knows by the same id.
GENAI_PROVIDERS = {"openai": "openai", "azure": "azure", "anthropic": "anthropic"}
OFFLINE = "offline"


@dataclass(frozen=True)
class Price:
    """A PRICING override: USD per 1M tokens."""

    input: Decimal
    cached_input: Decimal
    cache_write: Decimal
    cache_write_1h: Decimal
    output: Decimal


@dataclass(frozen=True)
class CallTokens:
    """What one call used. ``input_tokens`` counts ALL input tokens, cache reads
    and writes included (providers are normalised to that); ``cache_write_1h_tokens``
    is the part of ``cache_creation_tokens`` written for one hour."""

    input_tokens: int
    output_tokens: int
    cached_tokens: int = 0
    cache_creation_tokens: int = 0
    cache_write_1h_tokens: int = 0


_warned: set[str] = set()


def _price_from_setting(entry: dict[str, Any]) -> Price:
    base = Decimal(str(entry["input"]))
    write = Decimal(str(entry.get("cache_write", base)))
    return Price(
        input=base,
        cached_input=Decimal(str(entry.get("cached_input", base))),
        cache_write=write,
        cache_write_1h=Decimal(str(entry.get("cache_write_1h", write))),
        output=Decimal(str(entry["output"])),
    )


def override_for(model: str) -> Price | None:
    """The PRICING entry of ``model``: exact name, else the longest prefix followed
    by "-" (so dated snapshots like my-model-2026-01-01 match)."""
    overrides = get_setting("PRICING") or {}
    if model in overrides:
        return _price_from_setting(overrides[model])
    prefixes = [name for name in overrides if model.startswith(name + "-")]
    if prefixes:
        return _price_from_setting(overrides[max(prefixes, key=len)])
    return None


def price_as(provider: str, model: str) -> str:
    """The priced model a served name stands for: ``PROVIDERS[provider]["PRICE_AS"]``,
    a dict {served name: priced name} or one name for every model of the entry."""
    config = (get_setting("PROVIDERS") or {}).get(provider) or {}
    mapping = config.get("PRICE_AS")
    if isinstance(mapping, str) and mapping:
        return mapping
    if isinstance(mapping, dict):
        return str(mapping.get(model, model))
    return model


def load_price_data() -> None:
    """Load genai-prices' model data, and the modules that price a call, now. A
    worker's parent calls it at start, so each forked work horse shares them instead
    of loading them on its first priced call (tens of milliseconds per work horse)."""
    found = _genai_model(*SAMPLE_MODEL)
    if found is not None:  # pricing one call imports what a first answer would
        now = datetime.datetime.now(tz=datetime.timezone.utc)
        _genai_micro(found, CallTokens(1, 1), batch=False, service_tier="", at=now)


# A model any genai-prices release prices: load_price_data() prices one call of it.
SAMPLE_MODEL = ("openai", "gpt-4o-mini")


def _genai_model(provider: str, model: str) -> tuple[Any, Any] | None:
    """(genai provider, genai model) for our provider and model, or None."""
    snapshot = data_snapshot.get_snapshot()
    provider_id = GENAI_PROVIDERS.get(provider)
    if provider_id is None and ":" in model:  # "anthropic:claude-haiku-4-5" names it
        provider_id, model = model.split(":", 1)
    for candidate in [provider_id, None] if provider_id else [None]:
        try:
            return snapshot.find_provider_model(model, None, candidate, None)
        except LookupError:
            continue
    return None


def _override_micro(price: Price, tokens: CallTokens, batch: bool) -> Decimal:
    writes_5m = max(0, tokens.cache_creation_tokens - tokens.cache_write_1h_tokens)
    uncached = max(0, tokens.input_tokens - tokens.cached_tokens - tokens.cache_creation_tokens)
    micro = (
        uncached * price.input
        + tokens.cached_tokens * price.cached_input
        + writes_5m * price.cache_write
        + tokens.cache_write_1h_tokens * price.cache_write_1h
        + tokens.output_tokens * price.output
    )
    return micro * BATCH_DISCOUNT if batch else micro


def _has_variant(model_info: Any, key: str, value: str, at: datetime.datetime) -> bool:
    for variant in model_info.price_variants or ():
        if variant.when.get(key) != value:
            continue
        if variant.constraint is None or variant.constraint.active(at):
            return True
    return False


def _genai_usage(tokens: CallTokens) -> genai_prices.Usage:
    values: dict[str, int] = {
        "input_tokens": tokens.input_tokens,
        "output_tokens": tokens.output_tokens,
        "cache_read_tokens": tokens.cached_tokens,
        "cache_write_tokens": tokens.cache_creation_tokens,
    }
    if tokens.cache_write_1h_tokens:
        values["cache_write_1h_tokens"] = tokens.cache_write_1h_tokens
        five_minutes = tokens.cache_creation_tokens - tokens.cache_write_1h_tokens
        values["cache_write_5m_tokens"] = five_minutes
    return genai_prices.Usage(**values)


def _genai_micro(
    found: tuple[Any, Any],
    tokens: CallTokens,
    *,
    batch: bool,
    service_tier: str,
    at: datetime.datetime,
) -> Decimal:
    genai_provider, model_info = found
    context: dict[str, str] = {}
    if service_tier:
        context["service_tier"] = service_tier
    batch_rate = batch and _has_variant(model_info, "processing", "batch", at)
    if batch_rate:
        context["processing"] = "batch"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unknown usage keys: we pass only known ones
        calculation = model_info.calc_price(
            _genai_usage(tokens),
            genai_provider,
            genai_request_timestamp=at,
            price_context=context or None,
        )
    micro = Decimal(calculation.total_price) * ONE_MILLION
    return micro * BATCH_DISCOUNT if batch and not batch_rate else micro


def cost_micro(
    model: str,
    *,
    input_tokens: int,
    output_tokens: int,
    cached_tokens: int = 0,
    cache_creation_tokens: int = 0,
    cache_write_1h_tokens: int = 0,
    batch: bool = False,
    provider: str = "",
    service_tier: str = "",
    at: datetime.datetime | None = None,
) -> Decimal | None:
    """Exact cost in micro-dollars, or None when no price is known for the model.
    ``at``: when the call was made (default: now); prices change over time."""
    if provider == OFFLINE:
        return Decimal(0)  # the offline provider never bills, whatever the model is called
    tokens = CallTokens(
        input_tokens, output_tokens, cached_tokens, cache_creation_tokens, cache_write_1h_tokens
    )
    priced = price_as(provider, model)
    override = override_for(priced)
    if override is not None:
        return _override_micro(override, tokens, batch)
    found = _genai_model(provider, priced)
    if found is None:
        warn_unpriced(priced)
        return None
    when = at or datetime.datetime.now(tz=datetime.timezone.utc)
    return _genai_micro(found, tokens, batch=batch, service_tier=service_tier, at=when)


def warn_unpriced(model: str) -> None:
    """Log once per model and process that a model's cost is unknown."""
    if model in _warned:
        return
    _warned.add(model)
    logger.warning(
        "No price known for model %r: its calls are recorded with an unknown cost. "
        "Add it to AI_FIELDS['PRICING'] (or map it with PRICE_AS).",
        model,
    )


@cache
def price_data() -> dict[str, str]:
    """Which price data is in use: the genai-prices version and the newest
    price change in its bundled data that is already in force."""
    newest = datetime.date(2000, 1, 1)
    today = datetime.date.today()
    for provider in data_snapshot.get_snapshot().providers:
        for model in provider.models:
            for item in [*(model.prices if isinstance(model.prices, list) else [])]:
                newest = _later(newest, _start_date(item.constraint), today)
            for variant in model.price_variants or ():
                newest = _later(newest, _start_date(variant.constraint), today)
    return {"source": "genai-prices", "version": genai_prices.__version__, "as_of": str(newest)}


def _later(
    newest: datetime.date, date: datetime.date | None, today: datetime.date
) -> datetime.date:
    return date if date is not None and newest < date <= today else newest


def _start_date(constraint: Any) -> datetime.date | None:
    start = getattr(constraint, "start_date", None)
    if isinstance(start, datetime.datetime):
        return start.date()
    return start if isinstance(start, datetime.date) else None


def micro_to_usd(micro: Decimal) -> Decimal:
    return (micro / ONE_MILLION).quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)


def usd_to_micro(usd: Decimal | float | str) -> int:
    return int((Decimal(str(usd)) * ONE_MILLION).to_integral_value(rounding=ROUND_CEILING))


def ceil_micro(micro: Decimal) -> int:
    return int(micro.to_integral_value(rounding=ROUND_CEILING))
