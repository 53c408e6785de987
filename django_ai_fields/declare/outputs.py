"""Turning provider text into a value: choices, JSON and JSON Schema.

Provider answers are untrusted input: ``check_size`` refuses one longer than
``MAX_OUTPUT_CHARS`` before anything parses or stores it, and ``parse_json``
refuses JSON nested deeper than ``MAX_OUTPUT_DEPTH`` before ``json.loads``
(which would recurse until RecursionError)."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Sequence
from typing import Any

import jsonschema

from ..conf import get_setting

_FENCE = re.compile(r"^```[a-zA-Z0-9_-]*\s*\n?(.*?)\n?```$", re.DOTALL)


class InvalidOutput(ValueError):
    """The answer does not fit the field; the message says how."""


class OutputTooLarge(InvalidOutput):
    """Over MAX_OUTPUT_CHARS or MAX_OUTPUT_DEPTH: no repair call is made for it."""


def check_size(text: str) -> None:
    """Raise OutputTooLarge for an answer longer than MAX_OUTPUT_CHARS."""
    limit = get_setting("MAX_OUTPUT_CHARS")
    if limit and len(text) > int(limit):
        raise OutputTooLarge(
            f"The answer is {len(text):,} characters long, more than MAX_OUTPUT_CHARS "
            f"({int(limit):,}); it was not used."
        )


def clipped(text: str) -> str:
    """At most MAX_OUTPUT_CHARS of an answer (what a failed job keeps of it)."""
    limit = get_setting("MAX_OUTPUT_CHARS")
    return text[: int(limit)] if limit else text


def json_depth(body: str) -> int:
    """The deepest nesting of [] and {} in a JSON text (strings skipped), in one pass."""
    depth = deepest = 0
    in_string = escaped = False
    for char in body:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def parse_text(
    text: str, *, choices: Sequence[tuple[Any, Any]] = (), max_length: int | None = None
) -> str:
    """A text answer: trimmed, one of ``choices`` (value, label) when there are any,
    else cut to ``max_length``."""
    answer = without_nul(text).strip()
    if not answer:
        raise InvalidOutput("The provider returned an empty answer.")
    if choices:
        return match_choice(answer, choices)
    if max_length and len(answer) > max_length:
        answer = answer[:max_length].rstrip()
    return answer


def match_choice(answer: str, choices: Sequence[tuple[Any, Any]]) -> str:
    """Match a value or label, case-insensitively and ignoring quotes and a final dot."""
    wanted = _normalise(answer)
    for value, label in choices:
        if wanted in (_normalise(str(value)), _normalise(str(label))):
            return str(value)
    close = close_choice(wanted, choices)
    if close is not None:
        return close
    allowed = ", ".join(str(value) for value, _ in choices)
    raise InvalidOutput(f"{answer[:80]!r} is not one of the allowed choices ({allowed}).")


def close_choice(wanted: str, choices: Sequence[tuple[Any, Any]]) -> str | None:
    """The one choice whose value or label is at least CHOICE_MATCH_CUTOFF similar
    to the answer ("hott" -> "hot"); None when none is, or when two choices are."""
    cutoff = get_setting("CHOICE_MATCH_CUTOFF")
    if cutoff is None:
        return None
    matched = {
        str(value)
        for value, label in choices
        for text in (_normalise(str(value)), _normalise(str(label)))
        if could_match(wanted, text, float(cutoff))
        and difflib.SequenceMatcher(None, wanted, text).ratio() >= float(cutoff)
    }
    return matched.pop() if len(matched) == 1 else None


def could_match(a: str, b: str, cutoff: float) -> bool:
    """False when the lengths alone keep the ratio 2*M/(len a + len b) under ``cutoff``
    (M <= the shorter length): a long answer is never compared character by character."""
    shorter, total = min(len(a), len(b)), len(a) + len(b)
    return total == 0 or 2 * shorter / total >= cutoff


def _normalise(text: str) -> str:
    return text.strip().strip("\"'`").rstrip(".").strip().casefold()


def parse_json(text: str, schema: dict[str, Any] | None) -> Any:
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1).strip()
    if not body:
        raise InvalidOutput("The provider returned an empty answer.")
    limit = int(get_setting("MAX_OUTPUT_DEPTH") or 0)
    if limit and json_depth(body) > limit:
        raise OutputTooLarge(f"The answer's JSON is nested deeper than MAX_OUTPUT_DEPTH ({limit}).")
    try:
        value = without_nul(json.loads(body))
    except json.JSONDecodeError as exc:
        raise InvalidOutput(f"The answer is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise OutputTooLarge("The answer's JSON is nested too deeply to read.") from exc
    if schema:
        errors = sorted(_validator(schema).iter_errors(value), key=lambda e: list(e.path))
        if errors:
            where = "/".join(str(p) for p in errors[0].absolute_path) or "(root)"
            raise InvalidOutput(f"The answer violates the schema at {where}: {errors[0].message}")
    return value


def without_nul(value: Any) -> Any:
    """Drop NUL characters: PostgreSQL stores none in text or jsonb."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, list):
        return [without_nul(item) for item in value]
    if isinstance(value, dict):
        return {without_nul(key): without_nul(item) for key, item in value.items()}
    return value


_validators: dict[str, Any] = {}


def _validator(schema: dict[str, Any]) -> Any:
    """Build each schema's validator once per process."""
    key = json.dumps(schema, sort_keys=True)
    validator = _validators.get(key)
    if validator is None:
        cls = jsonschema.validators.validator_for(schema)
        validator = _validators[key] = cls(schema)
    return validator
