"""System checks: configuration mistakes fail ``manage.py check``, not a worker.

``check_installation`` is registered by ``AIFieldsConfig.ready()`` (apps.py), with
every other check of the app; ``check_field`` runs from each AI field's check()."""

from __future__ import annotations

import difflib
from typing import Any

import phonenumbers
from django.conf import settings
from django.core import checks
from django.core.exceptions import FieldDoesNotExist

from .. import row_keys
from ..conf import DEFAULTS, PROVIDER_KEYS, ai_settings, get_setting
from ..dispatch.backends.checks import task_backend_errors
from ..privacy import presidio as pii_presidio
from ..privacy import redaction
from ..providers import BUILTIN, provider_class
from .chains import find_cycle
from .input_checks import check_hosted_options
from .prompts import PromptSyntaxError, is_forward_field


def check_installation(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    errors = task_backend_errors()  # the task queue and the shared state
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
    errors.extend(check_setting_keys())
    errors.extend(_check_phone_regions())
    return errors


def check_setting_keys() -> list[checks.CheckMessage]:
    """Unknown keys are typos until proven otherwise: a warning at the top level, an
    error inside a PROVIDERS entry (a typo'd BASE_URL sends the data elsewhere)."""
    user = getattr(settings, "AI_FIELDS", None) or {}
    messages: list[checks.CheckMessage] = [
        checks.Warning(
            f"AI_FIELDS has an unknown key {key!r}; it is ignored.",
            hint=_did_you_mean(key, DEFAULTS) or "See docs/settings.md for the keys.",
            id="django_ai_fields.W013",
        )
        for key in user
        if key not in DEFAULTS
    ]
    providers = ai_settings()["PROVIDERS"]
    for name, entry in providers.items() if isinstance(providers, dict) else ():
        for key in entry if isinstance(entry, dict) else ():
            if key not in PROVIDER_KEYS:
                messages.append(
                    checks.Error(
                        f"AI_FIELDS['PROVIDERS'][{name!r}] has an unknown key {key!r}: "
                        "it is ignored, so requests may go to the provider's default "
                        "endpoint or use its defaults.",
                        hint=_did_you_mean(key, PROVIDER_KEYS)
                        or "Known keys: " + ", ".join(sorted(PROVIDER_KEYS)) + ".",
                        id="django_ai_fields.E015",
                    )
                )
    return messages


def _did_you_mean(key: Any, known: Any) -> str:
    close = difflib.get_close_matches(str(key).upper(), list(known), n=1, cutoff=0.6)
    return f"Did you mean {close[0]!r}?" if close else ""


def _check_phone_regions() -> list[checks.CheckMessage]:
    regions = get_setting("PII_PHONE_REGIONS")
    if isinstance(regions, str):
        unknown = [regions]
    else:
        unknown = [r for r in regions if str(r).upper() not in phonenumbers.SUPPORTED_REGIONS]
    if not unknown:
        return []
    return [
        checks.Error(
            f"AI_FIELDS['PII_PHONE_REGIONS'] must list known region codes, not {unknown!r}.",
            hint='ISO 3166 codes such as ["US", "DE"].',
            id="django_ai_fields.E032",
        )
    ]


def _check_encryption_key() -> list[checks.CheckMessage]:
    from cryptography.fernet import Fernet

    from ..crypto import configured_keys

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
    if field.ai.prompt is None:
        return [_error(field, "E001", "has no prompt.", "Pass prompt='...' or a callable.")]
    try:
        template = field.template
    except PromptSyntaxError as exc:
        return [_error(field, "E002", f"has a malformed prompt: {exc}", "Fix the template.")]
    errors = _check_names(field, template)
    errors += _check_cycle(field)
    if field.ai.provider and provider_error(field.ai.provider):
        errors.append(
            _error(
                field,
                "E008",
                f"names an unknown provider {field.ai.provider!r}: "
                f"{provider_error(field.ai.provider)}",
                'Use "openai", "anthropic", "azure", "offline" or a dotted path.',
            )
        )
    errors.extend(check_hosted_options(field))
    schema = field.json_schema()
    if schema is not None:
        import jsonschema  # here, not at the top: ready() imports this module in every process

        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except jsonschema.SchemaError as exc:
            errors.append(_error(field, "E009", f"has an invalid JSON Schema: {exc.message}", ""))
    errors.extend(_check_redaction(field))
    errors.extend(_check_row_key(field))
    return errors


def _check_row_key(field: Any) -> list[checks.CheckMessage]:
    """A composite primary key's parts must be ones ``AIJob.object_id`` can name
    (row_keys.py): otherwise the model's jobs could not find their row."""
    if getattr(field.model._meta, "abstract", False):
        return []
    return [
        _error(
            field,
            "E054",
            f"cannot be generated: its model's composite primary key part {part.name!r} "
            f"({type(part).__name__}) cannot be recorded on its AI jobs.",
            "Composite primary keys are supported with integer, text and foreign key "
            "parts (docs/deployment.md#composite-primary-keys).",
        )
        for part in row_keys.unsupported_parts(field.model)
    ]


def _check_redaction(field: Any) -> list[checks.CheckMessage]:
    """redact_pii names known entity types, and Presidio's only where it is installed."""
    unknown = redaction.unknown_types(field.ai.redact_pii)
    if unknown:
        known = ", ".join(redaction.ENTITY_TYPES)
        return [
            _error(
                field,
                "E030",
                f"redact_pii names unknown entity type(s) {', '.join(map(repr, unknown))}.",
                f"Use True or a list of: {known}.",
            )
        ]
    types = redaction.option_types(field.ai.redact_pii)
    presidio = [entity for entity in types if entity in redaction.PRESIDIO_TYPES]
    if presidio and not pii_presidio.available():
        return [
            _error(
                field,
                "E031",
                f"redact_pii names {', '.join(presidio)}, which needs Presidio (not installed).",
                'pip install "django-ai-fields[presidio]" and a spaCy model, or set '
                "AI_FIELDS['PII_PRESIDIO_ANALYZER'] (docs/tenants.md).",
            )
        ]
    return []


def _check_names(field: Any, template: Any) -> list[checks.CheckMessage]:
    """Every name the field's options and prompt give must be one it may use."""
    placeholders = sorted(template.field_names) if template else []
    triggers = list(field.ai.trigger_fields or ())
    return [
        *_unknown_exclusions(field),
        *_unusable_relations(field, [*placeholders, *triggers]),
        *_placeholder_errors(field, placeholders),
        *_trigger_errors(field, triggers),
    ]


def _unknown_exclusions(field: Any) -> list[checks.CheckMessage]:
    opts = field.model._meta
    return [
        _error(
            field,
            "E005",
            f"excludes {name!r}, which is not a field of {opts.label}.",
            "Remove it from excluded_fields.",
        )
        for name in field.ai.excluded_fields
        if not _has_field(opts, name)
    ]


def _unusable_relations(field: Any, names: list[str]) -> list[checks.CheckMessage]:
    opts = field.model._meta
    return [
        _error(
            field,
            "E013",
            f"names {name!r}, a reverse or generic relation of {opts.label}, "
            "which cannot be rendered or followed.",
            "Name a concrete field, a foreign key or a many-to-many field of the "
            "model, or use a callable prompt (instance) -> str for other data.",
        )
        for name in names
        if _is_unusable_relation(opts, name)
    ]


def _placeholder_errors(field: Any, placeholders: list[str]) -> list[checks.CheckMessage]:
    opts = field.model._meta
    errors: list[checks.CheckMessage] = []
    for name in placeholders:
        if _is_unusable_relation(opts, name):
            continue
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
        elif name in field.ai.excluded_fields:
            errors.append(
                _error(
                    field,
                    "E006",
                    f"prompt names {{{name}}}, which is excluded.",
                    "An excluded field is never sent to a provider.",
                )
            )
    return errors


def _trigger_errors(field: Any, triggers: list[str]) -> list[checks.CheckMessage]:
    opts = field.model._meta
    errors: list[checks.CheckMessage] = []
    for name in triggers:
        if _is_unusable_relation(opts, name):
            continue
        if not _has_field(opts, name):
            errors.append(
                _error(
                    field,
                    "E004",
                    f"trigger_fields names {name!r}, which is not a field of {opts.label}.",
                    "Remove it from trigger_fields.",
                )
            )
        elif name in field.ai.excluded_fields or name == field.name:
            errors.append(
                _error(
                    field,
                    "E007",
                    f"trigger_fields names {name!r}, which is excluded or the field itself.",
                    "Remove it from trigger_fields.",
                )
            )
    return errors


def _check_cycle(field: Any) -> list[checks.CheckMessage]:
    cycle = find_cycle(field)
    if cycle is None or field.name != min(cycle):  # reported once, on its first field
        return []
    if len(cycle) == 2 and field.name in (field.ai.trigger_fields or ()):
        return []  # trigger_fields names the field itself: E007 says so
    return [
        _error(
            field,
            "E014",
            "is part of a cycle of AI fields: " + " -> ".join(cycle) + ".",
            "An AI field may depend on another one (a chain), never on itself through "
            "others: remove one of these placeholders or trigger_fields.",
        )
    ]


def _is_unusable_relation(opts: Any, name: str) -> bool:
    """A reverse relation or GenericForeignKey: a field of the model, not a column."""
    try:
        found = opts.get_field(name)
    except FieldDoesNotExist:
        return False
    return not is_forward_field(found) and (found.is_relation or hasattr(found, "ct_field"))


def _has_field(opts: Any, name: str) -> bool:
    try:
        field = opts.get_field(name)
    except FieldDoesNotExist:
        return False
    return is_forward_field(field)


def _error(field: Any, code: str, message: str, hint: str) -> checks.Error:
    label = f"{field.model._meta.label}.{field.name}"
    return checks.Error(
        f"{label} {message}", hint=hint or None, obj=field, id=f"django_ai_fields.{code}"
    )
