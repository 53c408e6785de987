"""System checks of a field's ``inputs``, ``tools`` and ``api`` options and of
``PROVIDERS[...]["API"]`` (ids django_ai_fields.E141-E146); apps.py registers
``check_provider_apis``."""

from __future__ import annotations

from typing import Any

from django.core import checks
from django.core.exceptions import FieldDoesNotExist

from ..conf import get_setting
from ..providers.tools import APIS, RESPONSES, problems, speaks_responses
from .file_inputs import is_file_field


def check_provider_apis(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    return [
        checks.Error(
            f"AI_FIELDS['PROVIDERS'][{name!r}]['API'] is {entry['API']!r}.",
            hint=f"Use one of {', '.join(map(repr, APIS))} (OpenAI providers only).",
            id="django_ai_fields.E146",
        )
        for name, entry in (get_setting("PROVIDERS") or {}).items()
        if isinstance(entry, dict) and entry.get("API") not in (None, *APIS)
    ]


def check_hosted_options(field: Any) -> list[checks.CheckMessage]:
    """Messages for one AI field (its check() runs this through checks.check_field)."""
    errors = [*_check_inputs(field), *_check_api(field)]
    for problem in problems(field.ai.tools):
        errors.append(_error(field, "E143", f"has a bad tool: {problem}", ""))
    return errors


def _check_inputs(field: Any) -> list[checks.CheckMessage]:
    opts = field.model._meta
    errors: list[checks.CheckMessage] = []
    for name in field.ai.inputs:
        try:
            target = opts.get_field(name)
        except FieldDoesNotExist:
            target = None
        if target is None or not is_file_field(target):
            errors.append(
                _error(
                    field,
                    "E141",
                    f"inputs names {name!r}, which is not a FileField or ImageField "
                    f"of {opts.label}.",
                    "Name a FileField or ImageField of the model.",
                )
            )
        elif name in field.ai.excluded_fields:
            errors.append(
                _error(
                    field,
                    "E142",
                    f"inputs names {name!r}, which is excluded.",
                    "An excluded field is never sent to a provider.",
                )
            )
    return errors


def _check_api(field: Any) -> list[checks.CheckMessage]:
    if field.ai.api not in (None, *APIS):
        return [_error(field, "E144", f"has api={field.ai.api!r}.", f"Use one of {APIS}.")]
    if not (field.ai.tools or field.ai.api == RESPONSES):
        return []
    # Without provider=, a field with tools goes to "openai" when DEFAULT_PROVIDER
    # has no Responses API (providers.tools.tools_provider); api="responses" alone does not.
    name = field.ai.provider or (None if field.ai.tools else get_setting("DEFAULT_PROVIDER"))
    if name is None or speaks_responses(name):
        return []
    what = "hosted tools" if field.ai.tools else "api='responses'"
    return [
        _error(
            field,
            "E145",
            f"uses {what}, which only the OpenAI Responses API has; its provider is {name!r}.",
            'Set provider="openai" on the field.',
        )
    ]


def _error(field: Any, code: str, message: str, hint: str) -> checks.Error:
    label = f"{field.model._meta.label}.{field.name}"
    return checks.Error(
        f"{label} {message}", hint=hint or None, obj=field, id=f"django_ai_fields.{code}"
    )
