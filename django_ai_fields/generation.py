"""Field generation: the built-in AI function that writes one AI field of one row.

``FieldGeneration`` renders the field's prompt from the row, parses the answer as
the field wants it (choices, length, JSON Schema) and writes it back with the
guarded update (or, with ``review=True``, holds it as a proposal until a person
accepts it, docs/values.md); ``preloaded_rows`` loads the rows of many such jobs at
once (chunk runs). It sits above the declaration (fields, functions, ``declare/``) and intake
(a written value requests the fields chained to it) and below calling and jobs,
which run it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NoReturn

from django.contrib.contenttypes.models import ContentType
from django.db import models

from . import row_keys, signals
from .codes import FIELD_FUNCTION
from .conf import get_setting
from .databases import for_decisions
from .declare import definition, tokens
from .declare.file_inputs import load_attachments
from .declare.options import FieldOptions
from .declare.outputs import InvalidOutput, parse_json, parse_text
from .fields import AIFieldMixin, AIGeneratedJSONField, get_ai_field
from .functions import AIFunction, Cancelled, Superseded
from .intake.tracking import value_written
from .money.quotas import Budget
from .providers.tools import tools_provider


@dataclass
class RowData:
    instance: models.Model
    # The trigger values the prompt was rendered from: the write-back's guard.
    trigger_values: dict[str, Any]
    tenant: str
    # Related pks of the many-to-many triggers, likewise.
    m2m_values: dict[str, list[Any]] = field(default_factory=dict)
    # The answer waits for a person (the field's review=True or the tenant's policy).
    review: bool = False


class FieldGeneration(AIFunction):
    name = FIELD_FUNCTION
    options: FieldOptions  # the field's own

    def __init__(self, content_type: ContentType, object_id: str, field_name: str):
        model = content_type.model_class()
        if model is None:
            raise Cancelled("The target model no longer exists.")
        self.model_class = model
        self.object_id = object_id
        self.field: AIFieldMixin = get_ai_field(model, field_name)
        self.options = self.field.ai
        self.json_output = isinstance(self.field, AIGeneratedJSONField)
        self.json_schema = self.field.json_schema()

    def prepare(self, payload: Any, tenant: str) -> RowData:
        instance = _preloaded.get().get((self.model_class, self.object_id))
        if instance is None:
            rows = with_related(_deciding(self.model_class), [self.field])
            instance = rows.filter(row_keys.pk_filter(self.model_class, self.object_id)).first()
        if instance is None:
            raise Cancelled("The target row was deleted.")
        field = self.field
        return RowData(instance, field.trigger_values(instance), tenant, field.m2m_values(instance))

    def provider_name(self) -> str:
        """The field's provider; without one, where its hosted tools can go."""
        default = get_setting("DEFAULT_PROVIDER")
        return self.options.provider or tools_provider(self.options.tools, default) or default

    def build_prompt(self, data: RowData) -> str:
        limit = self.options.max_input_chars or get_setting("MAX_INPUT_CHARS")
        return tokens.fit(
            lambda chars: (
                self.field.render(data.instance, tenant=data.tenant, max_input_chars=chars).user
            ),
            char_limit=limit,
            token_limit=self.options.max_input_tokens or get_setting("MAX_INPUT_TOKENS"),
            model=self.options.model or get_setting("DEFAULT_MODEL"),
        )

    def system_prompt(self, data: Any) -> str:
        return self.field.system_prompt()

    def choices(self) -> list[str] | None:
        return self.field.choice_values()

    def attachments(self, data: RowData) -> list[Any]:
        return load_attachments(data.instance, self.options.inputs)

    def parse_response(self, text: str) -> Any:
        if self.json_output:
            return parse_json(text, self.json_schema)
        max_length = getattr(self.field, "max_length", None)
        return parse_text(text, choices=self.field.flatchoices, max_length=max_length)

    def restore_output(self, parsed: Any, masking: Any) -> Any:
        restored = masking.restore(parsed)
        max_length = getattr(self.field, "max_length", None)
        if isinstance(restored, str) and max_length and not self.field.choice_values():
            return restored[:max_length].rstrip()  # values may be longer than placeholders
        return restored

    def save_output(self, parsed: Any, data: RowData) -> None:
        """Write only if the row's column inputs still equal those we rendered from
        (and a value a person typed in meanwhile is kept); then the AI fields that
        depend on this one are requested, when its value changed. A many-to-many
        change while the call ran is not checked here (it would cost a query per
        row): it started a new job, whose answer replaces this one."""
        attname = self.field.attname
        rows = _deciding(self.model_class).filter(pk=data.instance.pk)
        if not rows.filter(**unchanged_filter(self.guard(data))).update(**{attname: parsed}):
            self.explain_unchanged_row(rows)
        if getattr(data.instance, attname) != parsed:
            setattr(data.instance, attname, parsed)
            value_written(data.instance, self.field)  # requests the fields chained to it

    def guard(self, data: RowData) -> dict[str, Any]:
        """The column values a write-back requires the row to hold still."""
        guard = dict(data.trigger_values)
        if self.options.keep_manual_edits and not self.json_output:
            guard[self.field.attname] = getattr(data.instance, self.field.attname)
        return guard

    def check_unchanged(self, data: RowData) -> None:
        """What save_output's guard checks, writing nothing (one query): raises
        Superseded (or Cancelled) unless the row still holds what the prompt was
        rendered from. A proposal for review is only kept when this passes."""
        rows = _deciding(self.model_class).filter(pk=data.instance.pk)
        if not rows.filter(**unchanged_filter(self.guard(data))).exists():
            self.explain_unchanged_row(rows)

    @staticmethod
    def explain_unchanged_row(rows: models.QuerySet[Any]) -> NoReturn:
        if not rows.exists():
            raise Cancelled("The row was deleted.")
        raise Superseded("The row's inputs changed while the job ran; a newer job handles them.")

    def needs_review(self, policy: Any) -> bool:
        """Whether an answer waits for a person: the field's ``review`` option, or
        the tenant's policy (``TenantPolicy.require_review``)."""
        return self.options.review or bool(policy is not None and policy.require_review)

    def definition_hash(self) -> str:
        return definition.definition_hash(self.field)

    def parse_value(self, value: Any) -> Any:
        """A value a person gave (an edited proposal), validated like an answer:
        choices, JSON Schema; a text longer than ``max_length`` is refused, not cut.
        A JSON field takes JSON text or a Python value. Raises InvalidOutput."""
        if self.json_output:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            return parse_json(text, self.json_schema)
        text = "" if value is None else str(value)
        max_length = getattr(self.field, "max_length", None)
        if max_length and not self.field.choice_values() and len(text.strip()) > max_length:
            raise InvalidOutput(f"The value is longer than {max_length} characters.")
        return parse_text(text, choices=self.field.flatchoices, max_length=max_length)

    def after_commit(self, job: Any, parsed: Any) -> None:
        signals.field_updated.send(
            sender=self.model_class,
            instance_pk=row_keys.decode(self.model_class, job.object_id),
            field_name=job.field_name,
            value=parsed,
            job=job,
        )

    def budget(self) -> Budget | None:
        if self.options.budget_usd is None:
            return None
        scope = f"budget:{self.model_class._meta.label}.{self.field.name}"
        return Budget(scope, Decimal(str(self.options.budget_usd)))

    def input_hash(self, data: RowData) -> str:
        return self.field.input_hash(data.trigger_values)


def _deciding(model: type[models.Model]) -> models.QuerySet[Any]:
    """The target rows as the job's run must see them: on the job's database (the
    primary, or the one the row was saved to with ``using()``), never a replica."""
    return model._base_manager.db_manager(for_decisions(model)).all()


def unchanged_filter(values: dict[str, Any]) -> dict[str, Any]:
    """A filter matching a row whose trigger columns still hold ``values``."""
    return {
        (f"{attname}__isnull" if value is None else attname): (True if value is None else value)
        for attname, value in values.items()
    }


def with_related(
    rows: models.QuerySet[Any], fields: Iterable[AIFieldMixin]
) -> models.QuerySet[Any]:
    """``rows`` loading what these fields' prompts render: foreign keys joined in,
    many-to-many fields prefetched (one query per relation for all the rows)."""
    joined = {name for f in fields for name in f.select_related_names}
    prefetched = {name for f in fields for name in f.prefetch_names}
    if joined:
        rows = rows.select_related(*sorted(joined))
    if prefetched:
        rows = rows.prefetch_related(*sorted(prefetched))
    return rows


_preloaded: ContextVar[dict[tuple[type[models.Model], str], models.Model]] = ContextVar(
    "ai_fields_preloaded_rows",
    default={},  # noqa: B039 (never mutated: replaced whole)
)


@contextmanager
def preloaded_rows(jobs: Iterable[Any]) -> Iterator[None]:
    """Load the target rows of these field jobs in bulk (one query per model, plus one
    per many-to-many relation their prompts render); ``prepare`` takes them from here."""
    wanted: dict[type[models.Model], tuple[set[str], list[AIFieldMixin]]] = {}
    for job in jobs:
        if job.function != FIELD_FUNCTION or job.content_type_id is None:
            continue
        model = job.content_type.model_class()
        try:
            ai_field = get_ai_field(model, job.field_name) if model is not None else None
        except (ValueError, LookupError):
            ai_field = None
        if ai_field is None:
            continue
        ids, fields = wanted.setdefault(model, (set(), []))
        ids.add(job.object_id)
        fields.append(ai_field)
    rows: dict[tuple[type[models.Model], str], models.Model] = {}
    for model, (ids, fields) in wanted.items():
        for row in with_related(_deciding(model).filter(row_keys.pks_filter(model, ids)), fields):
            rows[(model, row_keys.key_of(row))] = row
    token = _preloaded.set(rows)
    try:
        yield
    finally:
        _preloaded.reset(token)
