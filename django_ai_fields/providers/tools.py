"""Hosted tools (OpenAI Responses API): a field's ``tools=[...]`` spelled as the API
wants it, the problems a system check reports, and what the answer said about them.

A tool is a name (``"web_search"``, ``"code_interpreter"``) or a dict in the
Responses API's own shape (``{"type": "file_search", "vector_store_ids": ["vs_1"]}``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.utils.module_loading import import_string

from .reported import MAX_TOOL_USES, Reported

# The OpenAI provider's two APIs (providers/openai_responses.py).
CHAT = "chat"
RESPONSES = "responses"
APIS = (CHAT, RESPONSES)

WEB_SEARCH = "web_search"
FILE_SEARCH = "file_search"
CODE_INTERPRETER = "code_interpreter"
HOSTED_TOOLS = (WEB_SEARCH, FILE_SEARCH, CODE_INTERPRETER)

# Built-in providers with and without the Responses API (known without importing an
# SDK); offline accepts tools and makes no calls, for demos and tests.
RESPONSES_PROVIDERS = ("openai", "azure", "offline")
OTHER_PROVIDERS = ("anthropic",)
# Where a field's tools go when it names no provider and the default has no Responses API.
TOOLS_FALLBACK_PROVIDER = "openai"

# Output item type -> the tool it belongs to.
CALL_ITEMS = {
    "web_search_call": WEB_SEARCH,
    "file_search_call": FILE_SEARCH,
    "code_interpreter_call": CODE_INTERPRETER,
}
# Longest text of a tool call (a query, code) kept in the step log.
DETAIL_CHARS = 200


def speaks_responses(name: str) -> bool:
    """Whether a provider has the OpenAI provider's Responses mode; an unknown
    provider passes (the system checks report it as unknown)."""
    if name in RESPONSES_PROVIDERS or name in OTHER_PROVIDERS:
        return name in RESPONSES_PROVIDERS
    try:
        return hasattr(import_string(name), "complete_responses")
    except ImportError:
        return True


def tools_provider(tools: Iterable[Any], default_provider: str) -> str | None:
    """The provider of a field with these tools that names none: None (the default
    provider) when that has the Responses API, else "openai"."""
    if not list(tools) or speaks_responses(default_provider):
        return None
    return TOOLS_FALLBACK_PROVIDER


def normalize(tools: Iterable[Any]) -> list[dict[str, Any]]:
    """Each tool as a Responses API tool dict (a bare name gets its defaults)."""
    specs = []
    for tool in tools:
        spec = {"type": tool} if isinstance(tool, str) else dict(tool)
        if spec.get("type") == CODE_INTERPRETER:
            spec.setdefault("container", {"type": "auto"})
        specs.append(spec)
    return specs


def problems(tools: Iterable[Any]) -> list[str]:
    """What is wrong with a ``tools=[...]`` option, one sentence each (empty: fine)."""
    found = []
    for tool in tools:
        if not isinstance(tool, str | dict):
            found.append(f"{tool!r} is neither a tool name nor a dict.")
            continue
        kind = tool if isinstance(tool, str) else tool.get("type")
        if kind not in HOSTED_TOOLS:
            found.append(f"{kind!r} is not a hosted tool; use one of {', '.join(HOSTED_TOOLS)}.")
        elif kind == FILE_SEARCH:
            ids = tool.get("vector_store_ids") if isinstance(tool, dict) else None
            if not ids or not all(isinstance(i, str) and i for i in ids):
                found.append(
                    'file_search needs {"type": "file_search", "vector_store_ids": ["vs_..."]}.'
                )
    return found


def call_summary(item: Any) -> dict[str, Any] | None:
    """A tool call output item as a step-log entry, or None for other items."""
    kind = getattr(item, "type", "")
    if kind not in CALL_ITEMS:
        return None
    return {
        "type": CALL_ITEMS[kind],
        "status": str(getattr(item, "status", "") or ""),
        "detail": _detail(item)[:DETAIL_CHARS],
    }


def _detail(item: Any) -> str:
    if item.type == "web_search_call":
        action = getattr(item, "action", None)
        queries = getattr(action, "queries", None) or []
        return str(
            getattr(action, "query", None) or "; ".join(queries) or getattr(action, "url", "")
        )
    if item.type == "file_search_call":
        return "; ".join(getattr(item, "queries", None) or [])
    return str(getattr(item, "code", "") or "")


def billable_uses(output: Iterable[Any], tool_usage: Any, numbers: Reported) -> dict[str, int]:
    """Billable tool uses: web searches as the response's ``tool_usage`` counts them
    (else, or when that count is out of range, one per search call), file searches
    per call, code interpreter per container."""
    items = list(output)
    uses: dict[str, int] = {}
    reported = getattr(getattr(tool_usage, "web_search", None), "num_requests", None)
    label = "tool_usage.web_search.num_requests"
    searches = numbers.count(WEB_SEARCH, reported, label, limit=MAX_TOOL_USES)
    if reported is None or WEB_SEARCH in numbers.unknown:
        searches = sum(1 for item in items if getattr(item, "type", "") == "web_search_call")
    if searches:
        uses[WEB_SEARCH] = searches
    file_calls = sum(1 for item in items if getattr(item, "type", "") == "file_search_call")
    if file_calls:
        uses[FILE_SEARCH] = file_calls
    containers = {
        getattr(item, "container_id", "")
        for item in items
        if getattr(item, "type", "") == "code_interpreter_call"
    }
    if containers:
        uses[CODE_INTERPRETER] = len(containers)
    return uses
