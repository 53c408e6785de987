"""``AIGeneratedField`` and ``AIGeneratedJSONField``: model fields an LLM writes.

The AI options (prompt, provider, model...) are one ``FieldOptions`` object,
``field.ai``: ``field.model`` is Django's model class, so the LLM model reads
``field.ai.model``. They never reach ``deconstruct()``, so changing a prompt makes
no migration.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from functools import cached_property
from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.db import models

from .declare.options import FieldOptions
from .declare.prompts import (
    ALL_FIELDS,
    DATA_GUARD,
    PromptTemplate,
    RenderedPrompt,
    is_forward_field,
    related_rows,
    render_template,
)


class AIFieldMixin:
    """Options and behaviour shared by both AI field classes."""

    is_ai_field = True
    ai: FieldOptions
    # Set by the models.Field this mixin is combined with.
    name: str
    attname: str
    model: type[models.Model]
    verbose_name: Any
    flatchoices: list[tuple[Any, Any]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The AI options (declare/options.py); Django's own go on to models.Field.
        self.ai = FieldOptions.take(kwargs)
        super().__init__(*args, **kwargs)

    def check(self, **kwargs: Any) -> list[Any]:
        from .declare.checks import check_field

        return [*super().check(**kwargs), *check_field(self)]  # type: ignore[misc]

    # -- template -------------------------------------------------------------

    @cached_property
    def template(self) -> PromptTemplate | None:
        """The parsed template; None for callable prompts. Raises PromptSyntaxError."""
        prompt = self.ai.prompt
        if prompt is None or callable(prompt):
            return None
        return PromptTemplate.parse(prompt)

    # -- which fields feed the prompt ------------------------------------------

    def data_fields(self) -> list[models.Field]:
        """Fields ``{*}`` lists: concrete and many-to-many, not excluded, not AI,
        not an auto pk (a parent link of multi-table inheritance neither)."""
        excluded = set(self.ai.excluded_fields)
        opts = self.model_class._meta
        return [
            f
            for f in [*opts.concrete_fields, *opts.many_to_many]
            if f.name not in excluded
            and not getattr(f, "is_ai_field", False)
            and not (f.primary_key and f.auto_created)
            and not isinstance(f, models.AutoField)
            and not getattr(f.remote_field, "parent_link", False)
        ]

    def trigger_field_objects(self) -> list[models.Field]:
        """Fields whose change regenerates this one (defaults: docs/fields.md)."""
        opts = self.model_class._meta
        if self.ai.trigger_fields is not None:
            names: Iterable[str] = self.ai.trigger_fields
        elif self.template is not None and not self.template.uses_all_fields:
            names = sorted(self.template.field_names | set(self.ai.inputs))
        else:
            return self.data_fields()
        excluded = set(self.ai.excluded_fields)
        return [forward_field(opts, name) for name in names if name not in excluded]

    @cached_property
    def trigger_attnames(self) -> tuple[str, ...]:
        """Column triggers (many-to-many triggers are in ``trigger_m2m_names``)."""
        return tuple(f.attname for f in self.trigger_field_objects() if not f.many_to_many)

    @cached_property
    def trigger_m2m_names(self) -> tuple[str, ...]:
        """Many-to-many triggers: an add/remove/set/clear regenerates (intake/tracking.py)."""
        return tuple(f.name for f in self.trigger_field_objects() if f.many_to_many)

    def rendered_fields(self) -> list[models.Field]:
        """The fields the template renders; none known for a callable prompt."""
        if self.template is None:
            return []
        opts = self.model_class._meta
        named = [forward_field(opts, name) for name in sorted(self.template.field_names)]
        if self.template.uses_all_fields:
            named += [f for f in self.data_fields() if f not in named]
        return named

    @cached_property
    def select_related_names(self) -> tuple[str, ...]:
        """Foreign keys the prompt renders: loaded with the row (one query)."""
        return tuple(f.name for f in self.rendered_fields() if f.many_to_one or f.one_to_one)

    @cached_property
    def prefetch_names(self) -> tuple[str, ...]:
        """Many-to-many fields the prompt renders or that trigger it: one query each."""
        names = dict.fromkeys(f.name for f in self.rendered_fields() if f.many_to_many)
        names.update(dict.fromkeys(self.trigger_m2m_names))
        return tuple(names)

    @property
    def model_class(self) -> type[models.Model]:
        return self.model

    # -- rendering --------------------------------------------------------------

    def input_hash(self, values: dict[str, Any]) -> str:
        """Hash of the trigger values (attname -> value) a generation depends on."""
        payload = json.dumps(
            [self.name, sorted(values.items())],
            default=str,
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode()).hexdigest()

    def trigger_values(self, instance: models.Model) -> dict[str, Any]:
        return {attname: getattr(instance, attname) for attname in self.trigger_attnames}

    def m2m_values(self, instance: models.Model) -> dict[str, list[Any]]:
        """The related pks of each many-to-many trigger (prefetched ones cost no query)."""
        return {name: related_pks(instance, name) for name in self.trigger_m2m_names}

    def current_input_hash(self, instance: models.Model) -> str:
        """The input hash of the row as it is in memory, many-to-many triggers included."""
        return self.input_hash({**self.trigger_values(instance), **self.m2m_values(instance)})

    def render(
        self, instance: models.Model, *, tenant: str | None, max_input_chars: int | None
    ) -> RenderedPrompt:
        if callable(self.ai.prompt):
            text, truncated = str(self.ai.prompt(instance)), False
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
        base = self.ai.system_message or (
            f'You write the value of the field "{self.verbose_name}" '
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
        # Following hand edits of a JSON value costs a deep copy per loaded row: opt-in.
        kwargs.setdefault("keep_manual_edits", False)
        super().__init__(*args, **kwargs)

    def output_instructions(self) -> str:
        if self.schema:
            return "Answer with one JSON value that satisfies this JSON Schema:\n" + json.dumps(
                self.schema
            )
        return "Answer with one JSON value and nothing else."

    def json_schema(self) -> dict[str, Any] | None:
        return self.schema


def with_m2m_triggers(
    rows: models.QuerySet[Any], fields: Iterable[AIFieldMixin]
) -> models.QuerySet[Any]:
    """``rows`` prefetching the many-to-many triggers of ``fields`` (they feed each
    job's input hash): one query per relation for all the rows, not one per row."""
    names = sorted({name for field in fields for name in field.trigger_m2m_names})
    return rows.prefetch_related(*names) if names else rows


def forward_field(opts: Any, name: str) -> models.Field:
    """A field a prompt or trigger may name: concrete or many-to-many. A reverse
    relation or a GenericForeignKey raises FieldDoesNotExist (a check error)."""
    field = opts.get_field(name)
    if not is_forward_field(field):
        raise FieldDoesNotExist(f"{opts.label}.{name} is a reverse or generic relation")
    return field


def related_pks(instance: models.Model, name: str) -> list[Any]:
    return [row.pk for row in related_rows(instance, name)]


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
