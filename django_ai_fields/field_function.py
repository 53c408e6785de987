"""The built-in AI function: generate one AI field's value for one row."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import models

from . import signals, tokens
from .conf import get_setting
from .fields import AIFieldMixin, AIGeneratedJSONField, get_ai_field
from .file_inputs import load_attachments
from .functions import AIFunction, Cancelled, Superseded
from .outputs import parse_output
from .providers.tools import tools_provider
from .quotas import Budget

FIELD_FUNCTION = "field"


@dataclass
class RowData:
    instance: models.Model
    # The trigger values the prompt was rendered from: the write-back's guard.
    trigger_values: dict[str, Any]
    tenant: str


class FieldGeneration(AIFunction):
    name = FIELD_FUNCTION

    def __init__(self, content_type: ContentType, object_id: str, field_name: str):
        model = content_type.model_class()
        if model is None:
            raise Cancelled("The target model no longer exists.")
        self.model_class = model
        self.object_id = object_id
        self.field: AIFieldMixin = get_ai_field(model, field_name)
        self.provider = self.field.provider or tools_provider(
            self.field.tools, get_setting("DEFAULT_PROVIDER")
        )
        self.model = self.field.llm_model
        self.max_tokens = self.field.max_tokens
        self.temperature = self.field.temperature
        self.json_output = isinstance(self.field, AIGeneratedJSONField)
        self.json_schema = self.field.json_schema()
        self.cache_ttl = self.field.cache_ttl
        self.fallback = self.field.fallback
        self.provider_options = dict(self.field.provider_options)
        self.stream = self.field.stream
        self.tools = list(self.field.tools)
        self.api = self.field.api

    def prepare(self, payload: Any, tenant: str) -> RowData:
        instance = self.model_class._base_manager.filter(pk=self.object_id).first()
        if instance is None:
            raise Cancelled("The target row was deleted.")
        return RowData(instance, self.field.trigger_values(instance), tenant)

    def build_prompt(self, data: RowData) -> str:
        limit = self.field.max_input_chars or get_setting("MAX_INPUT_CHARS")
        return tokens.fit(
            lambda chars: (
                self.field.render(data.instance, tenant=data.tenant, max_input_chars=chars).user
            ),
            char_limit=limit,
            token_limit=self.field.max_input_tokens or get_setting("MAX_INPUT_TOKENS"),
            model=self.model or get_setting("DEFAULT_MODEL"),
        )

    def system_prompt(self, data: Any) -> str:
        return self.field.system_prompt()

    def choices(self) -> list[str] | None:
        return self.field.choice_values()

    def attachments(self, data: RowData) -> list[Any]:
        return load_attachments(data.instance, self.field.inputs)

    def parse_response(self, text: str) -> Any:
        return parse_output(self.field, text)

    def save_output(self, parsed: Any, data: RowData) -> None:
        """Write only if the row's inputs still equal those we rendered from."""
        written = self.model_class._base_manager.filter(
            pk=data.instance.pk, **unchanged_filter(data.trigger_values)
        ).update(**{self.field.attname: parsed})
        if not written:
            raise Superseded(
                "The row's inputs changed while the job ran; a newer job handles them."
            )

    def after_commit(self, job: Any, parsed: Any) -> None:
        signals.field_updated.send(
            sender=self.model_class,
            instance_pk=job.object_id,
            field_name=job.field_name,
            value=parsed,
            job=job,
        )

    def budget(self) -> Budget | None:
        if self.field.budget_usd is None:
            return None
        scope = f"budget:{self.model_class._meta.label}.{self.field.name}"
        return Budget(scope, Decimal(str(self.field.budget_usd)))

    def input_hash(self, data: RowData) -> str:
        return self.field.input_hash(data.trigger_values)


def unchanged_filter(values: dict[str, Any]) -> dict[str, Any]:
    """A filter matching a row whose trigger columns still hold ``values``."""
    return {
        (f"{attname}__isnull" if value is None else attname): (True if value is None else value)
        for attname, value in values.items()
    }
