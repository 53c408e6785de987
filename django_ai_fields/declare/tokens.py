"""Counting tokens: tiktoken when it is installed, else an estimate from characters.

tiktoken is optional (it downloads its BPE files on first use); without it a
token is taken as about 4 characters, a fair average for English text with
OpenAI's and Anthropic's tokenizers. ``TOKENIZER`` may also name a callable.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from typing import Any

from django.utils.module_loading import import_string

from ..conf import get_setting

logger = logging.getLogger("django_ai_fields")

CHARS_PER_TOKEN = 4
_MAX_SHRINKS = 4

Counter = Callable[[str, str], int]


def estimate(text: str, model: str = "") -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


@functools.lru_cache(maxsize=32)
def _tiktoken_encoding(model: str) -> Any:
    """The model's encoding, o200k_base for models tiktoken does not know; None
    when tiktoken is missing or cannot load its files."""
    try:
        import tiktoken
    except ImportError:
        return None
    try:
        try:
            return tiktoken.encoding_for_model(model)
        except KeyError:
            return tiktoken.get_encoding("o200k_base")
    except Exception as exc:  # e.g. no network to fetch the BPE file
        logger.warning("tiktoken unavailable (%s): counting tokens from characters", exc)
        return None


def _tiktoken_count(text: str, model: str) -> int:
    encoding = _tiktoken_encoding(model)
    if encoding is None:
        return estimate(text)
    return len(encoding.encode(text, disallowed_special=()))


def counter() -> Counter:
    choice = get_setting("TOKENIZER") or "chars"
    if callable(choice):
        return choice
    if choice == "chars":
        return estimate
    if choice in ("auto", "tiktoken"):
        return _tiktoken_count
    return import_string(choice)


def count(text: str, model: str = "") -> int:
    return int(counter()(text, model))


def fit(
    render: Callable[[int | None], str],
    *,
    char_limit: int | None,
    token_limit: int | None,
    model: str,
) -> str:
    """Render with ``char_limit`` for the record data; with a ``token_limit``, render
    again with a smaller data budget until the whole prompt fits (or data is gone)."""
    text = render(char_limit)
    if not token_limit:
        return text
    budget = char_limit if char_limit is not None else len(text)
    for _ in range(_MAX_SHRINKS):
        used = count(text, model)
        if used <= token_limit or budget <= 0:
            break
        # Shrink the data in proportion, with a margin for the template's own text.
        budget = max(0, int(budget * token_limit / used * 0.9))
        text = render(budget)
    return text
