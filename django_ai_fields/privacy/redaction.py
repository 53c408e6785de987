"""PII redaction in PREP: mask personal data in the rendered prompt before the
result-cache lookup, moderation and the call, and put it back into the answer
where the field asks for it.

- Which types: the field's (or AI function's) ``redact_pii`` (``True``: every
  built-in type; or a list of types) joined with its tenant's policy
  (``TenantPolicy.redact_pii`` / ``pii_entity_types``). A tenant can add
  redaction, never switch a field's off.
- Masking: each distinct value becomes a stable placeholder, numbered per type
  in order of appearance (``<EMAIL_1>``, ``<PHONE_2>``); the same value twice is
  the same placeholder. Text already shaped like a placeholder is defused first,
  so restoring never puts a value where the data had none.
- Restoring (``restore_pii=True``): placeholders in the answer are replaced by
  their values just before the answer is written to the row. The mapping is a
  ``Masking`` in the worker's memory only: never on AIJob (its ``prompt`` and
  ``output`` keep the placeholders, so cached answers hold no personal data),
  never in the step log (counts per type only), usage rows or logs.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

from ..codes import TRUNCATION_MARKER
from ..conf import get_setting
from . import pii
from . import presidio as pii_presidio

BUILTIN_TYPES = pii.BUILTIN_TYPES
PRESIDIO_TYPES = tuple(pii_presidio.ENTITIES)
ENTITY_TYPES = BUILTIN_TYPES + PRESIDIO_TYPES
# A value cut off by max_input_chars: masked, but never restored.
PARTIAL = "partial"
PARTIAL_PLACEHOLDER = "<REDACTED>"

_PLACEHOLDER = re.compile(r"<([A-Z]+)_(\d+)>")
_LOOK_ALIKE = re.compile(r"<((?:" + "|".join(t.upper() for t in ENTITY_TYPES) + r")_\d+)>")


class RestoredWriteFailed(Exception):
    """Writing an answer with restored values failed; the database's message (which
    may quote a value) is dropped, only its exception type is kept."""

    def __str__(self) -> str:
        return f"Writing the answer with its personal data restored failed ({self.args[0]})."


class Masking:
    """One prompt's placeholders and what they stand for; the repr shows counts only."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._values: dict[str, str] = {}
        self._placeholders: dict[tuple[str, str], str] = {}

    def placeholder(self, entity: str, value: str) -> str:
        if entity == PARTIAL:
            self.counts[PARTIAL] += 1
            return PARTIAL_PLACEHOLDER
        key = (entity, value)
        if key not in self._placeholders:
            number = sum(1 for kind, _value in self._placeholders if kind == entity) + 1
            placeholder = f"<{entity.upper()}_{number}>"
            self._placeholders[key] = placeholder
            self._values[placeholder] = value
        self.counts[entity] += 1
        return self._placeholders[key]

    def restore(self, value: Any) -> Any:
        """``value`` with every known placeholder replaced, inside JSON values too."""
        if isinstance(value, str):
            return _PLACEHOLDER.sub(lambda m: self._values.get(m.group(), m.group()), value)
        if isinstance(value, list):
            return [self.restore(item) for item in value]
        if isinstance(value, dict):
            return {self.restore(key): self.restore(item) for key, item in value.items()}
        return value

    def __repr__(self) -> str:
        return f"Masking({dict(self.counts)})"


# -- which types --------------------------------------------------------------------


def option_types(option: Any) -> tuple[str, ...]:
    """A ``redact_pii`` value as entity types: falsy -> none, ``True`` -> the
    built-in ones, a string or a list -> those (lower-cased, in order)."""
    if not option:
        return ()
    if option is True:
        return BUILTIN_TYPES
    if isinstance(option, str):
        option = [option]
    return tuple(dict.fromkeys(str(entity).strip().lower() for entity in option))


def unknown_types(option: Any) -> list[str]:
    return [entity for entity in option_types(option) if entity not in ENTITY_TYPES]


def policy_types(policy: Any) -> tuple[str, ...]:
    """The types a TenantPolicy asks for (blank list: every built-in type)."""
    if policy is None or not policy.redact_pii:
        return ()
    return option_types(policy.pii_entity_types or True)


def types_for(function: Any, policy: Any) -> tuple[str, ...]:
    """The types a job masks; raises ValueError (the job fails with bad_request,
    nothing sent) for a type unknown or not servable here."""
    wanted = tuple(dict.fromkeys(option_types(function.options.redact_pii) + policy_types(policy)))
    unknown = [entity for entity in wanted if entity not in ENTITY_TYPES]
    if unknown:
        raise ValueError(
            f"Unknown PII entity type(s) {', '.join(unknown)}; known: {', '.join(ENTITY_TYPES)}."
        )
    needs_presidio = [entity for entity in wanted if entity in PRESIDIO_TYPES]
    if needs_presidio and not pii_presidio.available():
        raise pii_presidio.PresidioUnavailable(
            f"PII redaction of {', '.join(needs_presidio)} needs Presidio "
            '(pip install "django-ai-fields[presidio]"), which is not installed.'
        )
    return wanted


# -- masking --------------------------------------------------------------------------


def redact(prompt: str, types: tuple[str, ...]) -> tuple[str, Masking | None]:
    """The rendered prompt masked, and the masking; unchanged and None without types.
    (The system message is the operator's own text and is not redacted.)"""
    if not types:
        return prompt, None
    return mask(prompt, types)


def mask(text: str, types: Iterable[str]) -> tuple[str, Masking]:
    """Replace every entity of ``types`` in ``text`` with its placeholder."""
    wanted = tuple(types)
    # "<EMAIL_1>" in the data becomes look-alike brackets: no placeholder of ours.
    text = _LOOK_ALIKE.sub("\u2039\\1\u203a", text)
    spans = pii.find(text, wanted, phone_regions=get_setting("PII_PHONE_REGIONS"))
    spans = pii.without_overlaps(
        [*spans, *pii_presidio.find(text, wanted), *truncated_fragments(text, wanted)]
    )
    masking = Masking()
    out, position = [], 0
    for span in spans:
        out.append(text[position : span.start])
        out.append(masking.placeholder(span.entity, text[span.start : span.end]))
        position = span.end
    out.append(text[position:])
    return "".join(out), masking


_NUMBER_TYPES = {pii.PHONE, pii.CARD, pii.IBAN, pii.SSN, pii.IP}
# How far before a truncation marker a cut-off value is looked for.
_FRAGMENT_WINDOW = 64
_FRAGMENTS = (
    ({pii.EMAIL}, re.compile(r"[\w.%+'-]+@[\w.-]*\Z")),
    ({pii.IBAN}, re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]){4,}\Z")),
    ({pii.IP}, re.compile(r"[0-9A-Fa-f]*:[0-9A-Fa-f]*:[0-9A-Fa-f:]*\Z")),
    # Four digits or more: a phone, card, SSN or IP address begun.
    (_NUMBER_TYPES, re.compile(r"[+(]?\d(?:[\d .()-]*\d)?\Z")),
)


def truncated_fragments(text: str, types: tuple[str, ...]) -> list[pii.Span]:
    """What is left of a value that max_input_chars cut off right before the
    truncation marker ("ada@exam …[truncated]", "4111 1111 11 …[truncated]"):
    no detector recognises a fragment, so one that looks like the start of a
    value is masked as ``<REDACTED>``."""
    wanted = set(types)
    found = []
    for marker in re.finditer(re.escape(TRUNCATION_MARKER), text):
        window_start = max(0, marker.start() - _FRAGMENT_WINDOW)
        window = text[window_start : marker.start()]
        for applies_to, pattern in _FRAGMENTS:
            match = pattern.search(window) if applies_to & wanted else None
            if match and (applies_to is not _NUMBER_TYPES or _digits(match.group()) >= 4):
                found.append(pii.Span(window_start + match.start(), marker.start(), PARTIAL))
                break
    return found


def _digits(text: str) -> int:
    return sum(char.isdigit() for char in text)


def describe(counts: dict[str, int]) -> str:
    """The step log's line: counts per type, never values."""
    if not counts:
        return "Personal data redaction: nothing found"
    listed = ", ".join(f"{n} {entity}" for entity, n in sorted(counts.items()))
    return f"Personal data masked: {listed}"
