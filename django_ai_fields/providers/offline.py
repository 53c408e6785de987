"""A deterministic provider with no network, for demos and tests.

It answers as a model would, from the prompt alone: a choice field gets the
choice its record's text points to, a JSON field the schema filled from the text,
a text field an extractive summary of the record (or a short headline when the
prompt asks for one). How it reads a prompt: offline_text.py and offline_json.py.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from typing import Any

from .base import CompletionRequest, CompletionResponse, Provider
from .offline_json import fill
from .offline_text import (
    Record,
    char_limit,
    facts_line,
    headline,
    pick_choice,
    read_record,
    sentences_wanted,
    summary,
    wants_headline,
)
from .streams import StreamItem, chunked

STREAM_PIECES = 4


class OfflineProvider(Provider):
    name = "offline"

    def probe(self) -> bool:
        return True

    def complete(self, request: CompletionRequest) -> CompletionResponse:
        text = answer(request)
        return CompletionResponse(
            text=text,
            input_tokens=max(1, (len(request.system) + len(request.prompt)) // 4),
            output_tokens=max(1, len(text) // 4),
            finish_reason="stop",
            model=request.model,
            billable=False,
        )

    def stream(self, request: CompletionRequest) -> Iterator[StreamItem]:
        """The same answer as complete(), cut into a few deltas."""
        response = self.complete(request)
        yield from chunked(response.text, STREAM_PIECES)
        yield response


def answer(request: CompletionRequest) -> str:
    """What a model would answer to ``request``, from its text alone."""
    record = read_record(request.prompt)
    if request.choices:
        return pick_choice(request.choices, record)
    if request.json_output:
        schema = request.json_schema or {}
        return json.dumps(fill(schema, record) if schema else labelled_values(record))
    limit = char_limit(request.system, request.max_tokens)
    if wants_headline(record, request.system):
        text = headline(record, max_chars=limit)
    else:
        text = summary(record, wanted=sentences_wanted(record, request.system), max_chars=limit)
    return text + _files_note(text, request.attachments) + _tools_note(request.tools)


def labelled_values(record: Record) -> dict[str, str]:
    """A JSON answer without a schema: the record's values by their labels."""
    labelled = {label.lower().replace(" ", "_"): v for label, v in record.fields if label}
    return labelled or {"summary": facts_line(record) or record.text}


def _files_note(text: str, attachments: list[Any]) -> str:
    """The files are not looked at offline: the answer names them (deterministically)."""
    if not attachments:
        return ""
    described = ", ".join(
        describe_file(item.content_type, item.data, item.digest) for item in attachments
    )
    return f" Attached: {described}." if text.endswith((".", "!", "?")) else f": {described}."


def describe_file(content_type: str, data: bytes, digest: str) -> str:
    """'a 64x64 PNG image (85d227cc)': a PNG's size is in its header."""
    if content_type == "image/png" and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return f"a {width}x{height} PNG image ({digest[:8]})"
    kind = content_type.split("/")[-1].upper()
    return f"a {kind} {'image' if content_type.startswith('image/') else 'file'} ({digest[:8]})"


def _tools_note(tools: list[dict[str, Any]]) -> str:
    """Hosted tools are accepted and never called offline: the answer says so."""
    if not tools:
        return ""
    return f" [tools not called offline: {', '.join(str(t.get('type')) for t in tools)}]"
