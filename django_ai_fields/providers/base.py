"""The provider interface: one request in, one response or ProviderError out."""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import importlib
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

from ..codes import ErrorCode
from .attachments import Attachment
from .key_redaction import redact_keys, remember_key, scrub_exception

RETRYABLE_CODES = frozenset(
    {ErrorCode.RATE_LIMITED, ErrorCode.PROVIDER_UNAVAILABLE, ErrorCode.TIMEOUT}
)
# CompletionResponse counts a caller estimates when the provider's are out of range.
INPUT_TOKENS = "input_tokens"
OUTPUT_TOKENS = "output_tokens"


@dataclass
class CompletionRequest:
    system: str
    prompt: str
    model: str
    max_tokens: int
    temperature: float | None = None
    json_schema: dict[str, Any] | None = None
    # A JSON answer is wanted (with or without a schema).
    json_output: bool = False
    choices: list[str] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    # Hosted tools (OpenAI Responses API): [{"type": "web_search"}, ...]; providers/tools.py.
    tools: list[dict[str, Any]] = field(default_factory=list)
    # Files sent with the prompt (images, PDFs), read by declare/file_inputs.py.
    attachments: list[Attachment] = field(default_factory=list)
    # "responses" or "chat" (OpenAI); None: the provider entry's API setting.
    api: str | None = None


@dataclass
class CompletionResponse:
    text: str
    input_tokens: int = 0
    output_tokens: int = 0
    # Input tokens read from the provider's prompt cache (a part of input_tokens).
    cached_tokens: int = 0
    # Input tokens written to the provider's prompt cache (Anthropic).
    cache_creation_tokens: int = 0
    finish_reason: str = ""
    model: str = ""
    # False for answers nobody bills (the offline provider): they cost 0.
    billable: bool = True
    # Answered through a provider's batch API: priced at the batch discount.
    batch: bool = False
    # The part of cache_creation_tokens written for 1 hour (Anthropic: 2x input).
    cache_write_1h_tokens: int = 0
    # Output tokens spent on reasoning (a part of output_tokens; OpenAI reports them).
    reasoning_tokens: int = 0
    # The service tier the provider says it used ("flex", "priority", ...).
    service_tier: str = ""
    # What a gateway (OpenRouter, LiteLLM) says it charged, in USD; None: not reported.
    gateway_cost_usd: Decimal | None = None
    # Hosted tool calls the answer made, for the step log: [{"type", "status", "detail"}].
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    # Billable hosted tool uses by tool: {"web_search": 2}; priced by money/tool_fees.py.
    tool_uses: dict[str, int] = field(default_factory=dict)


@dataclass
class BatchState:
    """A provider batch as last seen: still running, or ended (``error``: it failed
    as a whole, and every request in it gets that error)."""

    ended: bool
    error: ProviderError | None = None


class ProviderError(Exception):
    """A failed call, classified by one of the error codes (codes.ErrorCode).
    Its message never holds an API key (key_redaction.py)."""

    def __init__(self, code: str, message: str, *, retry_after: float | None = None):
        message = redact_keys(message)
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.code in RETRYABLE_CODES


class ReportedNumbersError(ProviderError):
    """An answer whose numbers are out of range (providers/reported.py): ``invalid_output``.

    The call was answered, so it is charged: ``answer`` holds what was read, with
    every out-of-range number replaced (a count by 0, a cost by None), and
    ``unknown`` names the counts (``INPUT_TOKENS``, ``OUTPUT_TOKENS``) the caller
    charges at its own estimate instead."""

    def __init__(self, problems: Sequence[str], answer: CompletionResponse, unknown: Iterable[str]):
        message = f"The provider reported numbers out of range: {'; '.join(problems)}."
        super().__init__(ErrorCode.INVALID_OUTPUT, message)
        self.answer = answer
        self.unknown = frozenset(unknown)


def code_for_status(status: int) -> str:
    """Map an HTTP status from any provider to an error code."""
    if status == 429:
        return ErrorCode.RATE_LIMITED
    if status in (401, 403):
        return ErrorCode.AUTH
    if status == 408:
        return ErrorCode.TIMEOUT
    if status == 409 or status >= 500:
        return ErrorCode.PROVIDER_UNAVAILABLE
    return ErrorCode.BAD_REQUEST


def retry_after_seconds(headers: Any) -> float | None:
    """Read ``retry-after-ms`` or ``retry-after`` (seconds) from response headers."""
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            return max(0.0, float(raw) * scale)
        except ValueError:
            continue
    return None


class Provider(ABC):
    """Base class for providers; ``config`` is the resolved credential dict."""

    name: str = ""
    # Request header carrying the job's idempotency key (sent through the SDK's
    # extra_headers); None: none sent. PROVIDERS[name]["IDEMPOTENCY_HEADER"] overrides.
    idempotency_header: str | None = None

    def __init__(self, config: dict[str, Any]):
        self.config = config
        remember_key(config.get("API_KEY"))  # kept out of the errors of its calls

    @abstractmethod
    def complete(self, request: CompletionRequest) -> CompletionResponse:
        """Make one call. Raise ProviderError on failure; never retry inside."""

    async def acomplete(self, request: CompletionRequest) -> CompletionResponse:
        """``complete()`` for concurrent chunk jobs (jobs/chunks.py). Providers with an
        async client override it; this default runs ``complete()`` in a thread."""
        return await asyncio.to_thread(self.complete, request)

    def probe(self) -> bool | None:
        """Check reachability cheaply; None when the provider has no such check.
        Raise ProviderError when it is unreachable or refuses the key."""
        return None

    def timeout(self) -> float:
        return float(self.config.get("TIMEOUT") or 30)

    def warm(self) -> None:
        """Build, without any network, what a first call would build (the SDK client,
        its TLS context, lazily imported SDK modules). The worker's parent process
        calls it at start, so each forked work horse inherits the result instead of
        paying for it again on every job (see docs/operations.md). Default: nothing."""
        return None

    # -- batch APIs (jobs/batches.py, ``ai_regenerate --batch``) ---------------------------
    # Providers with a batch API set supports_batch and implement the three methods.
    supports_batch: bool = False

    def submit_batch(self, items: Sequence[tuple[str, CompletionRequest]]) -> str:
        """Send (custom id, request) pairs as one batch; returns the batch's id."""
        raise NotImplementedError(f"{self.name} has no batch API")

    def batch_state(self, batch_id: str) -> BatchState:
        """Whether the batch has ended (and, if the whole batch failed, why)."""
        raise NotImplementedError(f"{self.name} has no batch API")

    def batch_results(
        self, batch_id: str, requests: Mapping[str, CompletionRequest]
    ) -> dict[str, CompletionResponse | ProviderError]:
        """Each ended request's answer or error, by custom id. ``requests`` are the
        requests sent (by custom id), where known: some answers need them to be read."""
        raise NotImplementedError(f"{self.name} has no batch API")

    def stream(self, request: CompletionRequest) -> Iterator[str | CompletionResponse]:
        """Yield the answer's text deltas as they arrive, then one CompletionResponse
        (whole text and usage). This default streams nothing: one delta, the whole answer."""
        response = self.complete(request)
        if response.text:
            yield response.text
        yield response


def error_from_sdk(sdk: Any, exc: Exception) -> ProviderError:
    """Classify an exception from the openai or anthropic SDK (same class names).
    Keys are redacted from the message and from ``exc`` itself."""
    scrub_exception(exc)
    if isinstance(exc, sdk.APITimeoutError):
        return ProviderError(ErrorCode.TIMEOUT, "The provider did not answer in time.")
    if isinstance(exc, sdk.APIConnectionError):
        return ProviderError(ErrorCode.PROVIDER_UNAVAILABLE, f"Connection failed: {exc}")
    if isinstance(exc, sdk.APIStatusError):
        return ProviderError(
            code_for_status(exc.status_code),
            f"HTTP {exc.status_code}: {exc.message}",
            retry_after=retry_after_seconds(exc.response.headers),
        )
    if too_many_digits(exc):
        # An answer holding an integer longer than Python reads: nothing of it can be
        # read, and the caller charges its own estimate of the call.
        unknown = (INPUT_TOKENS, OUTPUT_TOKENS)
        problem = f"an integer of more than {sys.get_int_max_str_digits()} digits"
        return ReportedNumbersError([problem], CompletionResponse(text=""), unknown)
    if isinstance(exc, sdk.APIResponseValidationError | ValueError):
        return ProviderError(ErrorCode.PROVIDER_UNAVAILABLE, f"Unreadable response: {exc}")
    return ProviderError(ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}")


def too_many_digits(exc: BaseException) -> bool:
    """Whether reading the answer failed on Python's limit on integer digits
    (``sys.set_int_max_str_digits``); CPython's ValueError says nothing more precise."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, ValueError) and "integer string conversion" in str(cause):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


T = TypeVar("T")


class SDKClientCache:
    """One SDK client per credential set and process: building one costs milliseconds."""

    def __init__(self) -> None:
        self._clients: dict[tuple[Any, ...], Any] = {}

    def get(self, key: tuple[Any, ...], factory: Callable[[], T]) -> T:
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = factory()
        return client

    def clear(self) -> None:
        self._clients.clear()


clients = SDKClientCache()


def async_key(key: tuple[Any, ...]) -> tuple[Any, ...]:
    """Cache key of an async SDK client: bound to the event loop (and process) it
    first ran on, so a forked work horse never reuses its parent's connections."""
    from .loop import call_loop

    return ("async", os.getpid(), id(call_loop()), *key)


def warm_sdk_client(client: Any, response_type: Any, sample: dict[str, Any]) -> None:
    """What the openai and anthropic SDKs build lazily on a client's first request:
    the platform headers (``platform.platform()`` starts a ``uname`` subprocess),
    the response model's pydantic schema (the SDKs parse with ``construct``), the
    IDNA codec that resolving the host name imports, and anyio's asyncio backend,
    which their async clients import on their first request (a drain's calls)."""
    client.default_headers  # noqa: B018
    response_type.construct(**sample)
    codecs.lookup("idna")
    with contextlib.suppress(ImportError):  # anyio is the SDKs' dependency, not ours
        importlib.import_module(ASYNC_BACKEND)


# The module anyio imports for asyncio the first time an async client runs.
ASYNC_BACKEND = "anyio._backends._asyncio"


def require_key(provider: Provider) -> None:
    """Fail with ``auth`` before any request when no API key is configured, or
    when the tenant's credential may not be used (``CREDENTIAL_ERROR``)."""
    if provider.config.get("CREDENTIAL_ERROR"):
        raise ProviderError(ErrorCode.AUTH, str(provider.config["CREDENTIAL_ERROR"]))
    if not provider.config.get("API_KEY"):
        raise ProviderError(
            ErrorCode.AUTH, f"No API key configured for provider {provider.name!r}."
        )


__all__ = [
    "BatchState",
    "CompletionRequest",
    "CompletionResponse",
    "Provider",
    "ProviderError",
    "clients",
    "code_for_status",
    "require_key",
]
