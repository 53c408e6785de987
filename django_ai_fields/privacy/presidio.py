"""The optional Presidio backend: names and places, which no pattern finds.

Used only for the entity types ``person`` and ``location`` and only when
Microsoft Presidio's analyzer is installed (``pip install
"django-ai-fields[presidio]"`` plus a spaCy model, docs/tenants.md#privacy), or
when ``AI_FIELDS["PII_PRESIDIO_ANALYZER"]`` names a callable returning an
analyzer. The built-in detector (pii.py) keeps handling the other types, so
their placeholders and checksums are the same with or without Presidio.
"""

from __future__ import annotations

import importlib.util
import threading
from typing import Any

from django.utils.module_loading import import_string

from ..conf import get_setting
from .pii import Span

# Our entity type -> Presidio's.
ENTITIES = {"person": "PERSON", "location": "LOCATION"}
_FROM_PRESIDIO = {value: key for key, value in ENTITIES.items()}


class PresidioUnavailable(ValueError):
    """Presidio types were asked for but the analyzer cannot be built or run."""


def available() -> bool:
    """Whether the Presidio types can be served in this process."""
    return bool(get_setting("PII_PRESIDIO_ANALYZER")) or (
        importlib.util.find_spec("presidio_analyzer") is not None
    )


_analyzers: dict[str, Any] = {}
_lock = threading.Lock()


def analyzer() -> Any:
    """This process's analyzer, built once (loading a spaCy model takes seconds)."""
    factory = get_setting("PII_PRESIDIO_ANALYZER") or ""
    key = factory if isinstance(factory, str) else repr(factory)
    with _lock:
        if key not in _analyzers:
            _analyzers[key] = _build(factory)
        return _analyzers[key]


def _build(factory: Any) -> Any:
    try:
        if factory:
            build = import_string(factory) if isinstance(factory, str) else factory
            return build()
        from presidio_analyzer import AnalyzerEngine

        return AnalyzerEngine()  # spaCy's en_core_web_lg, Presidio's default
    except Exception as exc:  # ImportError, or spaCy's OSError for a missing model
        raise PresidioUnavailable(
            f"PII redaction needs Presidio for names and places, which failed to load: {exc}"
        ) from exc


def find(text: str, types: tuple[str, ...]) -> list[Span]:
    """The Presidio types' entities in ``text`` at or above PII_SCORE_THRESHOLD."""
    wanted = [ENTITIES[entity] for entity in types if entity in ENTITIES]
    if not wanted or not text:
        return []
    try:
        results = analyzer().analyze(
            text=text,
            entities=wanted,
            language=get_setting("PII_PRESIDIO_LANGUAGE"),
            score_threshold=float(get_setting("PII_SCORE_THRESHOLD")),
        )
    except PresidioUnavailable:
        raise
    except Exception as exc:
        raise PresidioUnavailable(f"Presidio could not analyse the prompt: {exc}") from exc
    return [
        Span(result.start, result.end, _FROM_PRESIDIO[result.entity_type])
        for result in sorted(results, key=lambda result: -result.score)
        if result.entity_type in _FROM_PRESIDIO
    ]
