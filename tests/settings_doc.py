"""The settings docs/settings.md documents, read from its tables: the top-level
``AI_FIELDS`` keys, and the keys of a ``PROVIDERS`` entry with their example values
(the section "`PROVIDERS` entries"). Tests use them so that a newly documented key
is covered without editing the tests."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

SETTINGS_MD = Path(__file__).resolve().parent.parent / "docs" / "settings.md"
ENTRIES_HEADING = "## `PROVIDERS` entries"
KEY_ROW = re.compile(r"^\| `([A-Z][A-Z0-9_]*)` \|(.*)$", re.MULTILINE)


def _sections() -> tuple[str, str]:
    """(everything but the PROVIDERS entries section, that section)."""
    text = SETTINGS_MD.read_text(encoding="utf-8")
    start = text.index(ENTRIES_HEADING)
    end = text.find("\n## ", start + len(ENTRIES_HEADING))
    end = len(text) if end == -1 else end
    return text[:start] + text[end:], text[start:end]


def top_level_keys() -> list[str]:
    """The ``AI_FIELDS`` keys the page's tables document, in page order."""
    return [key for key, _rest in KEY_ROW.findall(_sections()[0])]


def provider_entry_examples() -> dict[str, Any]:
    """Each documented ``PROVIDERS`` entry key and the value of its example column
    (a Python literal in backticks)."""
    examples = {}
    for key, rest in KEY_ROW.findall(_sections()[1]):
        example = re.match(r"\s*`([^`]*)`", rest)
        assert example, f"docs/settings.md: the PROVIDERS entry key {key} has no `example`"
        examples[key] = ast.literal_eval(example.group(1))
    return examples
