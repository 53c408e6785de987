"""A field's definition: what decides its answer, as one hash.

Every job that writes an answer records the hash of the definition it was made
under (``AIJob.definition_hash``); a value whose job holds another hash than the
field's now is *stale* (``api.stale``, docs/values.md). In it, each as the worker
resolves it (a default setting counts when the field leaves the option unset):

- the prompt: the template text, or for a callable its qualified name and source;
- the system message, provider, model, temperature and max tokens;
- the output rules: choices (their values), ``max_length``, the JSON Schema;
- what goes with the prompt: hosted tools, file ``inputs``, ``excluded_fields``
  (what ``{*}`` leaves out) and ``provider_options`` (``seed``, ``reasoning_effort``);
- PII redaction (``redact_pii``, ``restore_pii``).

Not in it, on purpose: what only changes how or when the call is made (triggers,
``cache_ttl``, budgets, fallbacks, streaming, ``max_input_chars``), the app's own
instructions around the prompt (an upgrade of this package does not make every
value stale), choice labels (translated per language) and per-tenant settings (a
tenant's credential model, a tenant policy's redaction), which one hash per field
cannot hold. A prompt change still makes no migration: nothing here reaches
``deconstruct()``.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import textwrap
from functools import lru_cache
from typing import Any

from ..conf import get_setting, provider_settings
from ..providers.tools import tools_provider

# Bumped when what goes into the hash changes (every value then counts as stale).
VERSION = 1


def definition_hash(field: Any) -> str:
    """The hash of ``field``'s definition now (64 hex characters)."""
    payload = json.dumps(definition(field), sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def definition(field: Any) -> dict[str, Any]:
    """What the hash covers, as JSON-safe data."""
    ai = field.ai
    provider = resolved_provider(ai)
    return {
        "version": VERSION,
        "prompt": prompt_text(ai.prompt),
        "system_message": ai.system_message,
        "provider": provider,
        "model": ai.model
        or provider_settings(provider).get("DEFAULT_MODEL")
        or get_setting("DEFAULT_MODEL"),
        "temperature": ai.temperature,
        "max_tokens": ai.max_tokens or get_setting("MAX_TOKENS"),
        "choices": field.choice_values(),
        "max_length": getattr(field, "max_length", None),
        "schema": field.json_schema(),
        "tools": list(ai.tools),
        "inputs": list(ai.inputs),
        "excluded_fields": sorted(ai.excluded_fields),
        "provider_options": dict(ai.provider_options),
        "redact_pii": ai.redact_pii,
        "restore_pii": ai.restore_pii,
    }


def resolved_provider(ai: Any) -> str:
    """The provider a field's jobs call (as FieldGeneration.provider_name)."""
    default = get_setting("DEFAULT_PROVIDER")
    return str(ai.provider or tools_provider(ai.tools, default) or default)


def prompt_text(prompt: Any) -> Any:
    """A template as is; a callable as its qualified name and source, so editing
    the function's body (or renaming it) changes the definition."""
    if prompt is None or isinstance(prompt, str):
        return prompt
    return callable_source(prompt)


@lru_cache(maxsize=256)
def callable_source(function: Any) -> str:
    name = getattr(function, "__qualname__", type(function).__qualname__)
    module = getattr(function, "__module__", "")
    try:
        source = textwrap.dedent(inspect.getsource(function)).strip()
    except (OSError, TypeError):  # no source file (built in a shell, a C callable)
        source = ""
    return f"{module}.{name}\n{source}"
