"""``AIGeneratedField`` and ``AIGeneratedJSONField``: model fields an LLM writes.

The AI options (prompt, provider, ...) live on the field instance only; they
never reach ``deconstruct()``, so changing a prompt makes no migration.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from functools import cached_property
from typing import Any

from django.db import models

from .prompts import ALL_FIELDS, DATA_GUARD, PromptTemplate, RenderedPrompt, render_template

PromptSource = str | Callable[[models.Model], str]


class AIFieldMixin:
    """Options and behaviour shared by both AI field classes."""

    is_ai_field = True

    def __init__(
        self,
        *args: Any,
        prompt: PromptSource | None = None,
        excluded_fields: Iterable[str] = (),
        trigger_fields: Iterable[str] | None = None,
        provider: str | None = None,
        model: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        system_message: str | None = None,
        cache_ttl: int | None = None,
        budget_usd: float | None = None,
        auto_regenerate: bool = True,
        max_input_chars: int | None = None,
        max_input_tokens: int | None = None,
        fallback: Sequence[Any] | None = None,
        provider_options: dict[str, Any] | None = None,
        stream: bool = False,
        inputs: Iterable[str] = (),
        tools: Iterable[Any] = (),
        api: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.prompt = prompt
        self.excluded_fields = tuple(excluded_fields)
        self.trigger_fields = None if trigger_fields is None else tuple(trigger_fields)
        self.provider = provider
        # Field.model is the Django model class, so the LLM model name lives here.
        self.llm_model = model
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.system_message = system_message
        self.cache_ttl = cache_ttl
        self.budget_usd = budget_usd
        self.auto_regenerate = auto_regenerate
        self.max_input_chars = max_input_chars
        self.max_input_tokens = max_input_tokens
        # [(provider, model), ...] tried when the primary is unavailable; None: FALLBACK.
        self.fallback = None if fallback is None else list(fallback)
        # Passed as-is to the SDK call: tools, reasoning_effort, seed...
        self.provider_options = dict(provider_options or {})
        # Stream the answer; its text so far shows on the job while it runs.
        self.stream = stream
        # File/image fields of the model sent with the prompt (file_inputs.py).
        self.inputs = tuple(inputs)
        # Hosted tools (OpenAI Responses API): "web_search", {"type": "file_search", ...}.
        self.tools = list(tools)
        # OpenAI API: "chat" or "responses"; None: PROVIDERS[...]["API"] (tools: responses).
        self.api = api
        super().__init__(*args, **kwargs)

    def check(self, **kwargs: Any) -> list[Any]:
        from .checks import check_field

        return [*super().check(**kwargs), *check_field(self)]  # type: ignore[misc]

    # -- template -------------------------------------------------------------

    @cached_property
    def template(self) -> PromptTemplate | None:
        """The parsed template; None for callable prompts. Raises PromptSyntaxError."""
        if self.prompt is None or callable(self.prompt):
            return None
        return PromptTemplate.parse(self.prompt)

    # -- which fields feed the prompt ------------------------------------------

    def data_fields(self) -> list[models.Field]:
        """Fields ``{*}`` lists: concrete, not excluded, not AI, not an auto pk."""
        excluded = set(self.excluded_fields)
        return [
            f
            for f in self.model_class._meta.concrete_fields
            if f.name not in excluded
            and not getattr(f, "is_ai_field", False)
            and not (f.primary_key and f.auto_created)
            and not isinstance(f, models.AutoField)
        ]

    def trigger_field_objects(self) -> list[models.Field]:
        """Fields whose change regenerates this one (DESIGN §1 defaults)."""
        opts = self.model_class._meta
        if self.trigger_fields is not None:
            names: Iterable[str] = self.trigger_fields
        elif self.template is not None and not self.template.uses_all_fields:
            names = sorted(self.template.field_names | set(self.inputs))
        else:
            return self.data_fields()
        excluded = set(self.excluded_fields)
        return [opts.get_field(name) for name in names if name not in excluded]

    @cached_property
    def trigger_attnames(self) -> tuple[str, ...]:
        return tuple(f.attname for f in self.trigger_field_objects())

    @property
    def model_class(self) -> type[models.Model]:
        return self.model  # type: ignore[attr-defined,no-any-return]

    # -- rendering --------------------------------------------------------------

    def input_hash(self, values: dict[str, Any]) -> str:
        """Hash of the trigger values (attname -> value) a generation depends on."""
        payload = json.dumps(
            [self.name, sorted(values.items())],
            default=str,
            sort_keys=True,  # type: ignore[attr-defined]
        )
        return hashlib.sha256(payload.encode()).hexdigest()

    def trigger_values(self, instance: models.Model) -> dict[str, Any]:
        return {attname: getattr(instance, attname) for attname in self.trigger_attnames}

    def render(
        self, instance: models.Model, *, tenant: str | None, max_input_chars: int | None
    ) -> RenderedPrompt:
        if callable(self.prompt):
            text, truncated = str(self.prompt(instance)), False
        else:
            assert self.template is not None
            text, truncated = render_template(
                self.template,
                instance,
                all_fields=self.data_fields(),
                tenant=tenant,
                max_input_chars=max_input_chars,
            )
        return RenderedPrompt(system=self.system_prompt(), user=text, truncated=truncated)

    def system_prompt(self) -> str:
        opts = self.model_class._meta
        base = self.system_message or (
            f'You write the value of the field "{self.verbose_name}" '  # type: ignore[attr-defined]
            f"of a {opts.verbose_name} record. Answer with the value only."
        )
        return "\n\n".join(p for p in (base, self.output_instructions(), DATA_GUARD) if p)

    def output_instructions(self) -> str:
        return ""

    def choice_values(self) -> list[str] | None:
        return None

    def json_schema(self) -> dict[str, Any] | None:
        return None


class AIGeneratedField(AIFieldMixin, models.TextField):
    """Text an LLM writes. With ``max_length`` the column is a VARCHAR."""

    description = "Text generated by an LLM"

    def get_internal_type(self) -> str:
        return "CharField" if self.max_length else "TextField"

    def output_instructions(self) -> str:
        choices = self.choice_values()
        if choices:
            return "Answer with exactly one of these values and nothing else: " + ", ".join(choices)
        if self.max_length:
            return f"Answer in at most {self.max_length} characters."
        return ""

    def choice_values(self) -> list[str] | None:
        if not self.choices:
            return None
        return [str(value) for value, _label in self.flatchoices]


class AIGeneratedJSONField(AIFieldMixin, models.JSONField):
    """JSON an LLM writes, optionally validated against a JSON Schema."""

    description = "JSON generated by an LLM"

    def __init__(self, *args: Any, schema: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self.schema = schema
        super().__init__(*args, **kwargs)

    def output_instructions(self) -> str:
        if self.schema:
            return "Answer with one JSON value that satisfies this JSON Schema:\n" + json.dumps(
                self.schema
            )
        return "Answer with one JSON value and nothing else."

    def json_schema(self) -> dict[str, Any] | None:
        return self.schema


def ai_fields_of(model: type[models.Model]) -> list[AIFieldMixin]:
    """The AI fields of a model, inherited ones included."""
    return [f for f in model._meta.concrete_fields if isinstance(f, AIFieldMixin)]


def get_ai_field(model: type[models.Model], name: str) -> AIFieldMixin:
    field = model._meta.get_field(name)
    if not isinstance(field, AIFieldMixin):
        raise ValueError(f"{model._meta.label}.{name} is not an AI field")
    return field


__all__: Sequence[str] = (
    "ALL_FIELDS",
    "AIFieldMixin",
    "AIGeneratedField",
    "AIGeneratedJSONField",
    "ai_fields_of",
    "get_ai_field",
)
