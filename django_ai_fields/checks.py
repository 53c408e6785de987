"""System checks: configuration mistakes fail ``manage.py check``, not a worker."""

from __future__ import annotations

from typing import Any

import jsonschema
from django.apps import apps
from django.conf import settings
from django.core import checks
from django.core.exceptions import FieldDoesNotExist

from .conf import get_setting
from .input_checks import check_hosted_options
from .prompts import PromptSyntaxError
from .providers import BUILTIN, provider_class


@checks.register(checks.Tags.compatibility)
def check_installation(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    if not apps.is_installed("django_rq"):
        errors.append(
            checks.Error(
                "django_ai_fields needs django_rq in INSTALLED_APPS.",
                hint='Add "django_rq" to INSTALLED_APPS and define RQ_QUEUES.',
                id="django_ai_fields.E011",
            )
        )
    queue = get_setting("QUEUE")
    if queue not in getattr(settings, "RQ_QUEUES", {}):
        errors.append(
            checks.Error(
                f"AI_FIELDS['QUEUE'] is {queue!r}, which RQ_QUEUES does not define.",
                hint=f"Add {queue!r} to RQ_QUEUES or set AI_FIELDS['QUEUE'] to a defined queue.",
                id="django_ai_fields.E010",
            )
        )
    provider = get_setting("DEFAULT_PROVIDER")
    if provider_error(provider):
        errors.append(
            checks.Error(
                f"AI_FIELDS['DEFAULT_PROVIDER'] is {provider!r}: {provider_error(provider)}",
                hint='Use "openai", "anthropic", "azure", "offline" or a dotted path.',
                id="django_ai_fields.E008",
            )
        )
    errors.extend(_check_encryption_key())
    return errors


def _check_encryption_key() -> list[checks.CheckMessage]:
    from cryptography.fernet import Fernet

    from .crypto import configured_keys

    for key in configured_keys():
        try:
            Fernet(key)
        except (ValueError, TypeError):
            return [
                checks.Error(
                    "AI_FIELDS['ENCRYPTION_KEY'] holds a value that is not a Fernet key.",
                    hint="Generate one with cryptography.fernet.Fernet.generate_key().",
                    id="django_ai_fields.E012",
                )
            ]
    return []


def provider_error(name: str) -> str | None:
    if name in BUILTIN:
        return None  # known without importing its SDK (anthropic's import takes ~1 s)
    try:
        provider_class(name)
    except (ImportError, ValueError) as exc:
        return str(exc) or "cannot be imported"
    return None


def check_field(field: Any) -> list[checks.CheckMessage]:
    """Run by the field's own check(): errors name the model and the field."""
    if field.prompt is None:
        return [_error(field, "E001", "has no prompt.", "Pass prompt='...' or a callable.")]
    try:
        template = field.template
    except PromptSyntaxError as exc:
        return [_error(field, "E002", f"has a malformed prompt: {exc}", "Fix the template.")]
    errors = _check_names(field, template)
    if field.provider and provider_error(field.provider):
        errors.append(
            _error(
                field,
                "E008",
                f"names an unknown provider {field.provider!r}: {provider_error(field.provider)}",
                'Use "openai", "anthropic", "azure", "offline" or a dotted path.',
            )
        )
    errors.extend(check_hosted_options(field))
    schema = field.json_schema()
    if schema is not None:
        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except jsonschema.SchemaError as exc:
            errors.append(_error(field, "E009", f"has an invalid JSON Schema: {exc.message}", ""))
    return errors


def _check_names(field: Any, template: Any) -> list[checks.CheckMessage]:
    opts = field.model._meta
    excluded = set(field.excluded_fields)
    errors = [
        _error(
            field,
            "E005",
            f"excludes {name!r}, which is not a field of {opts.label}.",
            "Remove it from excluded_fields.",
        )
        for name in field.excluded_fields
        if not _has_field(opts, name)
    ]
    placeholders = sorted(template.field_names) if template else []
    for name in placeholders:
        if not _has_field(opts, name):
            errors.append(
                _error(
                    field,
                    "E003",
                    f"prompt names {{{name}}}, which is not a field of {opts.label}.",
                    "Use a field name, {*}, {record_id}, {model_name} or {tenant}; "
                    "write {{ and }} for literal braces.",
                )
            )
        elif name in excluded:
            errors.append(
                _error(
                    field,
                    "E006",
                    f"prompt names {{{name}}}, which is excluded.",
                    "An excluded field is never sent to a provider.",
                )
            )
    for name in field.trigger_fields or ():
        if not _has_field(opts, name):
            errors.append(
                _error(
                    field,
                    "E004",
                    f"trigger_fields names {name!r}, which is not a field of {opts.label}.",
                    "Remove it from trigger_fields.",
                )
            )
        elif name in excluded or name == field.name:
            errors.append(
                _error(
                    field,
                    "E007",
                    f"trigger_fields names {name!r}, which is excluded or the field itself.",
                    "Remove it from trigger_fields.",
                )
            )
    return errors


def _has_field(opts: Any, name: str) -> bool:
    try:
        field = opts.get_field(name)
    except FieldDoesNotExist:
        return False
    return bool(field.concrete)


def _error(field: Any, code: str, message: str, hint: str) -> checks.Error:
    label = f"{field.model._meta.label}.{field.name}"
    return checks.Error(
        f"{label} {message}", hint=hint or None, obj=field, id=f"django_ai_fields.{code}"
    )
