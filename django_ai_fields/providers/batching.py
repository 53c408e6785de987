"""What the OpenAI and Anthropic batch APIs share: request bodies built from the
same keyword arguments as a direct call, and errors read from result lines."""

from __future__ import annotations

from typing import Any

from ..codes import ErrorCode
from .base import CompletionResponse, ProviderError, code_for_status
from .streams import STREAM_ERROR_TYPES, error_event

# SDK keyword arguments that shape the HTTP call, not the request body.
TRANSPORT_OPTIONS = ("extra_headers", "extra_query", "timeout")


def request_body(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The JSON body the SDK would send for ``create(**kwargs)``: ``extra_body``
    merged in, transport options dropped (a batch line has no headers)."""
    body = {k: v for k, v in kwargs.items() if k not in (*TRANSPORT_OPTIONS, "extra_body")}
    body.update(kwargs.get("extra_body") or {})
    return body


def batched(response: CompletionResponse) -> CompletionResponse:
    response.batch = True
    return response


def status_error(status: int, body: Any) -> ProviderError:
    """A request in the batch answered with an HTTP error status."""
    _kind, message = error_event(body)
    return ProviderError(code_for_status(status), f"HTTP {status} in the batch: {message}")


def typed_error(body: Any) -> ProviderError:
    """A request in the batch failed with an error object (``type`` or ``code``)."""
    kind, message = error_event(body)
    code = STREAM_ERROR_TYPES.get(kind, ErrorCode.BAD_REQUEST)
    return ProviderError(code, f"Error in the batch ({kind or 'unknown'}): {message}")


def not_run(reason: str) -> ProviderError:
    """The batch ended before this request ran (expired or cancelled): worth a retry."""
    message = f"The provider's batch ended before the request ran ({reason})."
    return ProviderError(ErrorCode.TIMEOUT, message)


def unreadable(exc: Exception) -> ProviderError:
    return ProviderError(ErrorCode.PROVIDER_UNAVAILABLE, f"Unreadable batch result: {exc}")
