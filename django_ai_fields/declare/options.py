"""The AI options of a field or an AI function, each declared once, here.

``AIOptions`` is what a provider call needs (provider, model, temperature...), for
fields and functions alike; ``FieldOptions`` adds what only a field declares (its
prompt, its triggers...). A field keeps its options in ``field.ai`` and a function
in ``function.options``; field generation runs with the field's own object. A new
option is one line in one of these classes: the field takes it as a keyword, a
function as a class attribute, and neither reaches ``deconstruct()``.

The objects are frozen and their lists are stored as tuples, so a field's options
are never changed by a job that reads them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from django.db import models

PromptSource = str | Callable[[models.Model], str]
Options = TypeVar("Options", bound="AIOptions")


@dataclasses.dataclass(frozen=True, kw_only=True)
class AIOptions:
    """How a field's or a function's provider call is made (docs/fields.md)."""

    provider: str | None = None
    # The LLM model (Azure: deployment); None: the provider's DEFAULT_MODEL, else AI_FIELDS'.
    model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    system_message: str | None = None
    cache_ttl: int | None = None
    # Routes [(provider, model), ...] tried when the primary is unavailable; None: FALLBACK.
    fallback: tuple[Any, ...] | None = None
    # Passed as-is to the SDK call: seed, reasoning_effort...
    provider_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    # Stream the answer; its text so far shows on the job while it runs.
    stream: bool = False
    # Mask personal data in the prompt (True: every built-in type, or a list of
    # types) and put it back into the answer (privacy/redaction.py).
    redact_pii: bool | str | tuple[str, ...] = False
    restore_pii: bool = False
    # Hosted tools (OpenAI Responses API): "web_search", {"type": "file_search", ...}.
    tools: tuple[Any, ...] = ()
    # OpenAI API: "chat" or "responses"; None: PROVIDERS[...]["API"] (tools: responses).
    api: str | None = None

    def __post_init__(self) -> None:
        for option in dataclasses.fields(self):
            value = getattr(self, option.name)
            object.__setattr__(self, option.name, _kept(value))

    @classmethod
    def names(cls) -> frozenset[str]:
        return frozenset(option.name for option in dataclasses.fields(cls))

    @classmethod
    def take(cls: type[Options], keywords: dict[str, Any]) -> Options:
        """Options built from (and removed from) ``keywords``; the rest stay there."""
        return cls(**{name: keywords.pop(name) for name in cls.names() if name in keywords})


@dataclasses.dataclass(frozen=True, kw_only=True)
class FieldOptions(AIOptions):
    """A field's options: the call's, and what the field declares about its row."""

    prompt: PromptSource | None = None
    excluded_fields: tuple[str, ...] = ()
    trigger_fields: tuple[str, ...] | None = None
    # This field's monthly spend cap, per tenant.
    budget_usd: float | None = None
    auto_regenerate: bool = True
    max_input_chars: int | None = None
    max_input_tokens: int | None = None
    # A value a person typed in (admin, form) survives later trigger changes until
    # an explicit regenerate (docs/fields.md, "Hand edits").
    keep_manual_edits: bool = True
    # File/image fields of the model sent with the prompt (declare/file_inputs.py).
    inputs: tuple[str, ...] = ()
    # An answer waits for a person's accept before it is written (docs/values.md).
    review: bool = False


def _kept(value: Any) -> Any:
    """``value`` as options keep it: a list (any iterable but a string) as a tuple,
    a mapping as a copy of its own, so a caller's later change never reaches it."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Iterable) and not isinstance(value, str | bytes):
        return tuple(value)
    return value
