"""AI functions: the unit of work the engine runs.

Field generation is the built-in function ``"field"`` (generation.py); projects register
their own with ``@register`` and start them with
``django_ai_fields.api.run_ai_task(name, payload, tenant=None)``. Every
function goes through the same engine: phases, quotas, usage rows, retries
and signals.

::

    @register
    class SummarizeTicket(AIFunction):
        name = "summarize_ticket"

        def prepare(self, payload, tenant):
            return Ticket.objects.get(pk=payload["ticket_id"])

        def build_prompt(self, ticket):
            return f"Summarize: {fence(ticket.body)}"

        def save_output(self, summary, ticket):
            Ticket.objects.filter(pk=ticket.pk).update(summary=summary)
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sized
from typing import TYPE_CHECKING, Any, ClassVar

from django.core.serializers.json import DjangoJSONEncoder

from .conf import get_setting
from .declare.options import AIOptions
from .declare.outputs import InvalidOutput, parse_json, without_nul
from .declare.prompts import DATA_GUARD

if TYPE_CHECKING:
    from .privacy.redaction import Masking


class Superseded(Exception):
    """``save_output`` found its inputs changed: a newer job will write instead."""


class Cancelled(Exception):
    """``prepare`` found nothing left to do (e.g. the row was deleted)."""


class AIFunction:
    """Subclass, set ``name``, override ``build_prompt`` (and usually
    ``prepare`` and ``save_output``), and decorate with ``@register``."""

    name: ClassVar[str] = ""
    # How the provider is called (declare/options.py). Set an option as a class
    # attribute of its name (``model = "gpt-4o"``): __init_subclass__ gathers it here.
    options: AIOptions = AIOptions()
    # A JSON answer (parsed, and validated when a schema is given).
    json_output: bool = False
    json_schema: dict[str, Any] | None = None
    # The default validate() refuses data longer than this (len()).
    max_items: int | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        names = AIOptions.names()
        declared = {name: value for name, value in vars(cls).items() if name in names}
        if declared:
            cls.options = dataclasses.replace(cls.options, **declared)

    # -- the five steps ---------------------------------------------------------

    def prepare(self, payload: Any, tenant: str) -> Any:
        """Load what the prompt needs (rows, settings). Runs in the worker."""
        return payload

    def validate(self, data: Any) -> None:
        """Raise ValueError to refuse the job (it fails with ``bad_request``)."""
        if self.max_items is not None and isinstance(data, Sized) and len(data) > self.max_items:
            raise ValueError(f"{len(data)} items is more than {self.name}'s {self.max_items}.")

    def build_prompt(self, data: Any) -> str:
        raise NotImplementedError(f"{type(self).__name__} must implement build_prompt()")

    def parse_response(self, text: str) -> Any:
        """Turn the answer into a value; raise InvalidOutput when it does not fit."""
        if self.json_output or self.json_schema:
            return parse_json(text, self.json_schema)
        answer = text.strip()
        if not answer:
            raise InvalidOutput("The provider returned an empty answer.")
        return answer

    def save_output(self, parsed: Any, data: Any) -> None:
        """Store the result; runs in the job's final transaction. Raise
        Superseded if the inputs changed meanwhile. ``AIJob.output`` keeps ``parsed``."""

    def after_commit(self, job: Any, parsed: Any) -> None:
        """Called once the successful job has committed (signals, notifications)."""

    def restore_output(self, parsed: Any, masking: Masking) -> Any:
        """The answer with masked values put back (``restore_pii``), as it is written."""
        return masking.restore(parsed)

    # -- settings the engine asks for ------------------------------------------

    def system_prompt(self, data: Any) -> str:
        return "\n\n".join(p for p in (self.options.system_message, DATA_GUARD) if p)

    def provider_name(self) -> str:
        return self.options.provider or get_setting("DEFAULT_PROVIDER")

    def model_name(self, config: dict[str, Any]) -> str:
        return self.options.model or config.get("DEFAULT_MODEL") or get_setting("DEFAULT_MODEL")

    def token_limit(self) -> int:
        return self.options.max_tokens or get_setting("MAX_TOKENS")

    def choices(self) -> list[str] | None:
        return None

    def attachments(self, data: Any) -> list[Any]:
        """Files sent with the prompt (providers.attachments.Attachment); raise
        ValueError to refuse the job (a file over a limit)."""
        return []

    def fallbacks(self) -> list[Any]:
        """Routes tried when the primary is unavailable (docs/reliability.md)."""
        fallback = self.options.fallback
        return list(get_setting("FALLBACK") if fallback is None else fallback)

    def result_cache_ttl(self) -> int:
        ttl = self.options.cache_ttl
        if ttl is None:
            ttl = get_setting("CACHE_TTL")
        return int(ttl)

    def budget(self) -> Any:
        """A quotas.Budget this function's spend counts against, or None."""
        return None

    def input_hash(self, data: Any) -> str:
        return ""

    def definition_hash(self) -> str:
        """What decides the answer, hashed (stored on the job; docs/values.md)."""
        return ""


def json_safe(value: Any) -> Any:
    return without_nul(json.loads(json.dumps(value, cls=DjangoJSONEncoder, default=str)))


_registry: dict[str, type[AIFunction]] = {}


def register(cls: type[AIFunction]) -> type[AIFunction]:
    """Class decorator: make ``cls`` runnable by name."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} needs a name")
    existing = _registry.get(cls.name)
    if existing is not None and existing.__qualname__ != cls.__qualname__:
        raise ValueError(f"AI function name {cls.name!r} is taken by {existing.__qualname__}")
    _registry[cls.name] = cls
    return cls


def get_function(name: str) -> type[AIFunction]:
    try:
        return _registry[name]
    except KeyError:
        raise LookupError(f"No AI function named {name!r} is registered.") from None


def registered() -> dict[str, type[AIFunction]]:
    return dict(_registry)


__all__ = [
    "AIFunction",
    "Cancelled",
    "Superseded",
    "get_function",
    "json_safe",
    "register",
    "registered",
]
