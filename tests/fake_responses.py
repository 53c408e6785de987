"""The OpenAI Responses API (``POST /v1/responses``) of the fake provider
(tests/fake_provider.py): plain and streamed (server-sent events) answers.

Hosted tools: for every tool the request offers (``body["tools"]``), the answer
holds one completed call item before its message (``web_search_call``,
``file_search_call``, ``code_interpreter_call``), and ``tool_usage`` reports the
billable web searches, as OpenAI does. ``fp.tool_calls_per_tool`` sets how many
calls each offered tool makes (0: none).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from tests.fake_provider import Usage, sse, stream_pieces


def responses_usage(usage: Usage) -> dict[str, Any]:
    """Responses usage: ``input_tokens`` includes the cached tokens."""
    input_tokens = usage.input_tokens + usage.cached_tokens
    payload: dict[str, Any] = {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": input_tokens + usage.output_tokens,
    }
    if usage.gateway_cost is not None:
        payload["cost"] = usage.gateway_cost  # OpenRouter's figure
    return {**payload, **usage.extra}


def tool_call_items(body: Mapping[str, Any], number: int, per_tool: int) -> list[dict[str, Any]]:
    """One completed call item per offered hosted tool (``per_tool`` of each)."""
    items: list[dict[str, Any]] = []
    for index, tool in enumerate(body.get("tools") or []):
        kind = tool.get("type") if isinstance(tool, dict) else None
        for repeat in range(per_tool):
            item_id = f"{number}_{index}_{repeat}"
            if kind in ("web_search", "web_search_preview"):
                action = {"type": "search", "query": f"fake search {item_id}", "sources": []}
                items.append(
                    {
                        "type": "web_search_call",
                        "id": f"ws_{item_id}",
                        "status": "completed",
                        "action": action,
                    }
                )
            elif kind == "file_search":
                items.append(
                    {
                        "type": "file_search_call",
                        "id": f"fs_{item_id}",
                        "status": "completed",
                        "queries": [f"fake query {item_id}"],
                        "results": None,
                    }
                )
            elif kind == "code_interpreter":
                items.append(
                    {
                        "type": "code_interpreter_call",
                        "id": f"ci_{item_id}",
                        "status": "completed",
                        "code": "print(6 * 7)",
                        "container_id": f"cntr_fake_{number}",
                        "outputs": [{"type": "logs", "logs": "42"}],
                    }
                )
    return items


def tool_usage(items: list[dict[str, Any]], searches_reported: Any = None) -> dict[str, Any]:
    """``tool_usage``: the web searches made (or ``searches_reported``, as given)."""
    searches = sum(1 for item in items if item["type"] == "web_search_call")
    if searches_reported is not None:
        searches = searches_reported
    zero_tokens = {"image_tokens": 0, "text_tokens": 0}
    image_gen = {
        "input_tokens": 0,
        "input_tokens_details": zero_tokens,
        "output_tokens": 0,
        "total_tokens": 0,
    }
    return {"image_gen": image_gen, "web_search": {"num_requests": searches}}


def openai_response(
    body: Mapping[str, Any],
    text: str,
    usage: Usage,
    finish_reason: str,
    number: int,
    *,
    per_tool: int = 1,
    searches_reported: Any = None,
) -> dict[str, Any]:
    """A Response object: tool call items, then one assistant message."""
    items = tool_call_items(body, number, per_tool)
    message = {
        "type": "message",
        "id": f"msg_fake_{number}",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }
    cut = finish_reason in ("length", "max_tokens")
    return {
        "id": f"resp_fake_{number}",
        "object": "response",
        "created_at": int(time.time()),
        "status": "incomplete" if cut else "completed",
        "incomplete_details": {"reason": "max_output_tokens"} if cut else None,
        "error": None,
        "model": body.get("model") or "fake-model",
        "output": [*items, message],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": list(body.get("tools") or []),
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "text": body.get("text") or {"format": {"type": "text"}},
        "usage": responses_usage(usage),
        "tool_usage": tool_usage(items, searches_reported),
        "store": body.get("store", True),
    }


def responses_stream_events(
    body: Mapping[str, Any],
    text: str,
    usage: Usage,
    finish_reason: str,
    number: int,
    *,
    per_tool: int = 1,
    searches_reported: Any = None,
) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """(opening, delta, closing) events of a streamed Response."""
    final = openai_response(
        body,
        text,
        usage,
        finish_reason,
        number,
        per_tool=per_tool,
        searches_reported=searches_reported,
    )
    started = {**final, "status": "in_progress", "output": [], "usage": None, "tool_usage": None}
    sequence = iter(range(1, 10_000))

    def event(kind: str, **data: Any) -> bytes:
        return sse({"type": kind, "sequence_number": next(sequence), **data}, kind)

    opening = [event("response.created", response=started)]
    opening += [
        event("response.output_item.done", output_index=index, item=item)
        for index, item in enumerate(final["output"][:-1])
    ]
    message_id, index = f"msg_fake_{number}", len(final["output"]) - 1
    deltas = [
        event(
            "response.output_text.delta",
            item_id=message_id,
            output_index=index,
            content_index=0,
            delta=piece,
            logprobs=[],
        )
        for piece in stream_pieces(text)
    ]
    kind = "response.incomplete" if final["status"] == "incomplete" else "response.completed"
    closing = [
        event(
            "response.output_text.done",
            item_id=message_id,
            output_index=index,
            content_index=0,
            text=text,
            logprobs=[],
        ),
        event(kind, response=final),
    ]
    return opening, deltas, closing
