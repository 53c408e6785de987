"""A deterministic provider with no network, for demos and tests."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from typing import Any

from .base import CompletionRequest, CompletionResponse, Provider
from .streams import StreamItem, chunked

STREAM_PIECES = 4

_DATA = re.compile(r"<data[^>]*>(.*?)</data>", re.DOTALL)


class OfflineProvider(Provider):
    name = "offline"

    def probe(self) -> bool:
        return True

    def complete(self, request: CompletionRequest) -> CompletionResponse:
        seen = request.prompt + "".join(item.digest for item in request.attachments)
        digest = int(hashlib.sha256(seen.encode()).hexdigest(), 16)
        if request.choices:
            text = request.choices[digest % len(request.choices)]
        elif request.json_output:
            text = json.dumps(example_for_schema(request.json_schema or {"type": "object"}))
        else:
            text = _summary(request.prompt) + _files_note(request.attachments)
            text += _tools_note(request.tools)
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


def _files_note(attachments: list[Any]) -> str:
    """Which files came with the prompt, by type and a short digest (deterministic)."""
    if not attachments:
        return ""
    names = ", ".join(f"{item.content_type} {item.digest[:8]}" for item in attachments)
    return f" [files: {names}]"


def _tools_note(tools: list[dict[str, Any]]) -> str:
    """Hosted tools are accepted and never called offline: the answer says so."""
    if not tools:
        return ""
    return f" [tools not called offline: {', '.join(str(t.get('type')) for t in tools)}]"


def _summary(prompt: str) -> str:
    data = " ".join(m.strip() for m in _DATA.findall(prompt)) or prompt
    words = " ".join(data.split())
    return f"[offline] {words[:200]}"


def example_for_schema(schema: dict[str, Any]) -> Any:
    """The smallest instance that satisfies a simple JSON Schema."""
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties", {})
        required = schema.get("required", list(props))
        return {name: example_for_schema(props.get(name, {})) for name in required}
    if kind == "array":
        count = schema.get("minItems", 0)
        return [example_for_schema(schema.get("items", {})) for _ in range(count)]
    minimum = schema.get("minimum", 0)
    return {
        "string": "x" * schema.get("minLength", 7) if schema.get("minLength") else "offline",
        "integer": int(minimum),
        "number": minimum,
        "boolean": False,
        "null": None,
    }.get(kind)
