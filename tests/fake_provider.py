"""A fake LLM provider HTTP server for the test suite.

It speaks enough of the OpenAI Chat Completions, Azure OpenAI and Anthropic Messages APIs for
the real ``openai`` and ``anthropic`` SDKs to talk to it over loopback HTTP. It
records every request it receives and can be scripted to fail, stall, answer with garbage or
drop the connection.

The batch APIs (OpenAI's Batch API, Anthropic's Message Batches) live in tests/fake_batches.py
(``fp.batch_api``); each request of a batch is answered as its normal endpoint would.

Scripted behaviour (``enqueue_fault``, ``delay``, ``fail_all_with``) applies to the provider
endpoints only; ``GET /v1/models`` answers at once, so reachability checks stay cheap, unless
``models_delay`` holds it (``max_models_in_flight`` then shows concurrent probes).

Typical use::

    with running_fake_provider() as fp:
        client = openai.OpenAI(api_key="sk-test", base_url=fp.openai_base_url, max_retries=0)
        fp.enqueue_fault(status=429, headers={"Retry-After": "2"})
        ...
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import socket
import socketserver
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

OPENAI = "openai"
AZURE = "azure"
RESPONSES = "responses"
ANTHROPIC = "anthropic"
MODELS = "models"
MODERATIONS = "moderations"

DEFAULT_FINISH_REASON = "stop"
DEFAULT_MODELS = ("gpt-4o-mini", "claude-haiku-4-5")

_AZURE_CHAT_PATH = re.compile(r"^/openai/deployments/(?P<deployment>[^/]+)/chat/completions$")

# OpenAI finish_reason -> Anthropic stop_reason. Values of either vocabulary are accepted.
_ANTHROPIC_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
_OPENAI_FINISH_REASONS = {value: key for key, value in _ANTHROPIC_STOP_REASONS.items()}

# HTTP status -> (Anthropic error type, OpenAI error type, OpenAI error code)
_ERROR_KINDS: dict[int, tuple[str, str, str | None]] = {
    400: ("invalid_request_error", "invalid_request_error", None),
    401: ("authentication_error", "invalid_request_error", "invalid_api_key"),
    403: ("permission_error", "invalid_request_error", "permission_denied"),
    404: ("not_found_error", "invalid_request_error", "not_found"),
    413: ("request_too_large", "invalid_request_error", None),
    429: ("rate_limit_error", "requests", "rate_limit_exceeded"),
    500: ("api_error", "server_error", None),
    503: ("api_error", "server_error", "service_unavailable"),
    529: ("overloaded_error", "server_error", None),
}


@dataclass
class Usage:
    """Token counts to report; ``input_tokens`` excludes cached tokens (Anthropic semantics)."""

    input_tokens: int = 11
    output_tokens: int = 7
    cached_tokens: int = 0
    cache_creation_tokens: int = 0
    # Anthropic: the part of cache_creation_tokens written for 1 hour (the rest: 5 minutes).
    cache_write_1h_tokens: int = 0
    # OpenAI: completion_tokens_details.reasoning_tokens (a part of output_tokens).
    reasoning_tokens: int = 0
    # OpenAI: the response's service_tier ("default", "flex", "priority"); None: not sent.
    service_tier: str | None = None
    # OpenRouter: usage.cost, what the gateway charged in USD; None: not sent.
    gateway_cost: float | None = None
    # Usage keys sent as given, over the computed ones (hostile values; ``raw_number``).
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class RecordedRequest:
    """One request as received by the fake provider."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    raw: bytes
    call_number: int = 0
    """1-based position among provider-endpoint calls; 0 for any other request."""


@dataclass(frozen=True)
class Fault:
    """A one-shot behaviour consumed by the next provider-endpoint request."""

    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    raw_body: bytes | None = None
    drop: bool = False
    message: str | None = None
    # Streamed requests only: after ``stream_after`` text deltas, send an error event
    # of this HTTP status's kind, or (``stream_drop``) close the connection.
    stream_error: int | None = None
    stream_drop: bool = False
    stream_after: int = 1


@dataclass
class Reply:
    """What the handler writes back; ``drop`` means: close the socket, write nothing."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    # A streamed reply: server-sent events written one by one, each after its delay
    # (seconds); an event of None closes the connection mid-stream.
    events: list[tuple[float, bytes | None]] | None = None


def default_responder(request: RecordedRequest) -> str:
    """Deterministic reply text: ``fake reply #N`` where N counts provider calls."""
    return f"fake reply #{request.call_number}"


# --------------------------------------------------------------------------- payload builders


def route_for(method: str, path: str) -> str | None:
    """Name the endpoint a request is for, or ``None`` when the path is unknown."""
    if method == "GET" and path == "/v1/models":
        return MODELS
    if method == "POST" and path == "/v1/moderations":
        return MODERATIONS
    if method != "POST":
        return None
    if path == "/v1/chat/completions":
        return OPENAI
    if path == "/v1/responses":
        return RESPONSES
    if path == "/v1/messages":
        return ANTHROPIC
    if _AZURE_CHAT_PATH.match(path):
        return AZURE
    return None


def openai_usage(usage: Usage) -> dict[str, Any]:
    """OpenAI usage: ``prompt_tokens`` includes the cached tokens."""
    prompt_tokens = usage.input_tokens + usage.cached_tokens
    payload: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": prompt_tokens + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": usage.reasoning_tokens,
            "audio_tokens": 0,
        },
    }
    if usage.gateway_cost is not None:
        payload["cost"] = usage.gateway_cost  # OpenRouter's figure
    return {**payload, **usage.extra}


def anthropic_usage(usage: Usage) -> dict[str, Any]:
    """Anthropic usage: ``input_tokens`` excludes cache reads and cache writes."""
    payload = {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
        "cache_creation_input_tokens": usage.cache_creation_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": usage.cache_creation_tokens
            - usage.cache_write_1h_tokens,
            "ephemeral_1h_input_tokens": usage.cache_write_1h_tokens,
        },
        "service_tier": "standard",
    }
    return {**payload, **usage.extra}


def openai_finish_reason(value: str) -> str:
    return _OPENAI_FINISH_REASONS.get(value, value)


def anthropic_stop_reason(value: str, *, tool_used: bool) -> str:
    stop_reason = _ANTHROPIC_STOP_REASONS.get(value, value)
    if tool_used and stop_reason == "end_turn":
        return "tool_use"
    return stop_reason


def forced_anthropic_tool(body: Mapping[str, Any]) -> str | None:
    """The tool name when the request forces ``tool_choice={"type": "tool", ...}``."""
    choice = body.get("tool_choice")
    if body.get("tools") and isinstance(choice, dict) and choice.get("type") == "tool":
        return cast(str, choice.get("name"))
    return None


def forced_openai_function(body: Mapping[str, Any]) -> str | None:
    """The function name when the request forces ``tool_choice={"type": "function", ...}``."""
    choice = body.get("tool_choice")
    if body.get("tools") and isinstance(choice, dict) and choice.get("type") == "function":
        return cast(str, (choice.get("function") or {}).get("name"))
    return None


def tool_input(text: str) -> dict[str, Any]:
    """Parse the reply text as the JSON object a forced tool call carries."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"reply text for a forced tool call is not JSON: {text!r}") from exc
    if not isinstance(value, dict):
        raise ValueError(f"reply text for a forced tool call is not a JSON object: {text!r}")
    return value


def openai_completion(
    body: Mapping[str, Any], text: str, usage: Usage, finish_reason: str, number: int
) -> dict[str, Any]:
    """A Chat Completions response (also used for Azure)."""
    message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
    function = forced_openai_function(body)
    if function:
        tool_input(text)  # fail loudly on a reply that is not a JSON object
        message["content"] = None
        message["tool_calls"] = [
            {
                "id": f"call_fake_{number}",
                "type": "function",
                "function": {"name": function, "arguments": text},
            }
        ]
    return {
        "id": f"chatcmpl-fake-{number}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model") or "fake-model",
        "system_fingerprint": "fp_fake",
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": openai_finish_reason(finish_reason),
            }
        ],
        "usage": openai_usage(usage),
        **({"service_tier": usage.service_tier} if usage.service_tier else {}),
    }


def anthropic_message(
    body: Mapping[str, Any], text: str, usage: Usage, finish_reason: str, number: int
) -> dict[str, Any]:
    """A Messages API response; a forced tool gets a ``tool_use`` block."""
    tool = forced_anthropic_tool(body)
    block: dict[str, Any]
    if tool:
        block = {"type": "tool_use", "id": f"toolu_fake_{number}", "name": tool}
        block["input"] = tool_input(text)
    else:
        block = {"type": "text", "text": text}
    return {
        "id": f"msg_fake_{number}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model") or "fake-model",
        "content": [block],
        "stop_reason": anthropic_stop_reason(finish_reason, tool_used=bool(tool)),
        "stop_sequence": None,
        "usage": anthropic_usage(usage),
    }


def openai_error(status: int, message: str) -> dict[str, Any]:
    _, error_type, code = _error_kind(status)
    return {"error": {"message": message, "type": error_type, "param": None, "code": code}}


def anthropic_error(status: int, message: str) -> dict[str, Any]:
    error_type, _, _ = _error_kind(status)
    return {"type": "error", "error": {"type": error_type, "message": message}}


def _error_kind(status: int) -> tuple[str, str, str | None]:
    if status in _ERROR_KINDS:
        return _ERROR_KINDS[status]
    return _ERROR_KINDS[500] if status >= 500 else _ERROR_KINDS[400]


def models_list(models: list[str]) -> dict[str, Any]:
    """A model list both SDKs can parse (OpenAI and Anthropic fields side by side)."""
    data = [
        {
            "id": name,
            "object": "model",
            "type": "model",
            "created": 1_700_000_000,
            "created_at": "2023-11-14T22:13:20Z",
            "owned_by": "fake-provider",
            "display_name": name,
        }
        for name in models
    ]
    return {
        "object": "list",
        "data": data,
        "has_more": False,
        "first_id": models[0] if models else None,
        "last_id": models[-1] if models else None,
    }


def moderation_result(body: Any, terms: tuple[str, ...]) -> dict[str, Any]:
    """An OpenAI moderation response: ``violence`` flagged when the input holds a term."""
    text = str((body or {}).get("input", "")) if isinstance(body, dict) else ""
    flagged = any(term.casefold() in text.casefold() for term in terms)
    categories = {"violence": flagged, "harassment": False, "self-harm": False}
    scores = {name: (0.99 if hit else 0.01) for name, hit in categories.items()}
    return {
        "id": "modr-fake",
        "model": (body or {}).get("model", "omni-moderation-latest"),
        "results": [{"flagged": flagged, "categories": categories, "category_scores": scores}],
    }


# A JSON number written as these digits, verbatim: json.dumps cannot write an
# integer of more than 4300 digits (Python's limit), nor anything malformed.
_RAW_NUMBER = "\x00raw:"


def raw_number(digits: str) -> str:
    """A value that the fake provider's JSON holds as the bare number ``digits``."""
    return _RAW_NUMBER + digits


def json_text(payload: Any) -> str:
    """``json.dumps(payload)`` with each ``raw_number`` written bare."""
    return re.sub(r'"\\u0000raw:([^"]*)"', r"\1", json.dumps(payload))


def json_reply(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Reply:
    return Reply(status=status, body=json_text(payload).encode(), headers=dict(headers or {}))


# --------------------------------------------------------------------------- streamed replies


def stream_pieces(text: str) -> list[str]:
    """The text deltas of a streamed reply: one per word, its trailing spaces included."""
    return re.findall(r"\s*\S+\s*", text) or ([text] if text else [])


def sse(data: Any, event: str | None = None) -> bytes:
    """One server-sent event (``data`` JSON-encoded unless it is a str)."""
    payload = data if isinstance(data, str) else json_text(data)
    return (f"event: {event}\n" if event else "").encode() + f"data: {payload}\n\n".encode()


def openai_stream_events(
    body: Mapping[str, Any], text: str, usage: Usage, finish_reason: str, number: int
) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """(opening, delta, closing) events of a streamed Chat Completion; the closing
    ones carry a usage chunk when ``stream_options.include_usage`` is set."""
    base = {
        "id": f"chatcmpl-fake-{number}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model") or "fake-model",
        "system_fingerprint": "fp_fake",
    }
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return sse({**base, "choices": [choice], **({"usage": None} if include_usage else {})})

    closing = [chunk({}, openai_finish_reason(finish_reason))]
    if include_usage:
        closing.append(sse({**base, "choices": [], "usage": openai_usage(usage)}))
    closing.append(sse("[DONE]"))
    deltas = [chunk({"content": piece}) for piece in stream_pieces(text)]
    return [chunk({"role": "assistant", "content": ""})], deltas, closing


def anthropic_stream_events(
    body: Mapping[str, Any], text: str, usage: Usage, finish_reason: str, number: int
) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """(opening, delta, closing) events of a streamed Message: input usage in
    ``message_start``, output tokens in ``message_delta``; a forced tool streams
    its input as ``input_json_delta`` pieces."""
    tool = forced_anthropic_tool(body)
    message = anthropic_message(body, text, usage, finish_reason, number)
    stop_reason = message["stop_reason"]
    start_usage = {**anthropic_usage(usage), "output_tokens": 1}
    message.update(content=[], stop_reason=None, usage=start_usage)
    if tool:
        tool_input(text)
        block = {"type": "tool_use", "id": f"toolu_fake_{number}", "name": tool, "input": {}}
    else:
        block = {"type": "text", "text": ""}
    opening = [
        sse({"type": "message_start", "message": message}, "message_start"),
        sse(
            {"type": "content_block_start", "index": 0, "content_block": block},
            "content_block_start",
        ),
        sse({"type": "ping"}, "ping"),
    ]
    kind, key = ("input_json_delta", "partial_json") if tool else ("text_delta", "text")
    deltas = [
        sse(
            {"type": "content_block_delta", "index": 0, "delta": {"type": kind, key: piece}},
            "content_block_delta",
        )
        for piece in stream_pieces(text)
    ]
    closing = [
        sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
        sse(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": usage.output_tokens},
            },
            "message_delta",
        ),
        sse({"type": "message_stop"}, "message_stop"),
    ]
    return opening, deltas, closing


def stream_error_event(route: str, status: int, message: str) -> bytes:
    """The error event a provider sends in the middle of a 200 stream."""
    if route == ANTHROPIC:
        return sse(anthropic_error(status, message), "error")
    if route == RESPONSES:  # the Responses API's error event: flat, no "error" key
        error = openai_error(status, message)["error"]
        flat = {"type": "error", "code": error["code"] or error["type"], "message": message}
        return sse({**flat, "param": None, "sequence_number": 99}, "error")
    return sse(openai_error(status, message))


# --------------------------------------------------------------------------- HTTP plumbing


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Workers open up to CONCURRENCY connections each at once: the stdlib's backlog
    # of 5 drops SYNs under that, and clients see a 1 s stall, then a connect error.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], provider: FakeProvider) -> None:
        self.provider = provider
        self.connections_opened = 0
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind() calls socket.getfqdn(), a reverse DNS lookup that can stall.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def track(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)
            self.connections_opened += 1

    def untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def close_connections(self) -> None:
        """Shut down kept-alive connections so their handler threads end."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "FakeProvider/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request access log."""

    @property
    def _server(self) -> _Server:
        return cast(_Server, self.server)

    def setup(self) -> None:
        super().setup()
        self._server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self._server.untrack(self.connection)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        raw = self._read_body()
        record = RecordedRequest(
            method=self.command,
            path=url.path,
            query=dict(parse_qsl(url.query, keep_blank_values=True)),
            headers={key.lower(): value for key, value in self.headers.items()},
            body=_parse_json(raw),
            raw=raw,
        )
        reply = self._server.provider.handle(record)
        if reply.drop:
            self._drop_connection()
        else:
            self._send(reply)

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length:
            return self.rfile.read(int(length))
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        return b""

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _send(self, reply: Reply) -> None:
        if reply.events is not None:
            self._send_events(reply)
            return
        try:
            self.send_response(reply.status)
            headers = {"Content-Type": "application/json", **reply.headers}
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (e.g. its timeout fired)

    def _send_events(self, reply: Reply) -> None:
        """A chunked ``text/event-stream`` response, one chunk per event."""
        assert reply.events is not None
        try:
            self.send_response(reply.status)
            headers = {"Content-Type": "text/event-stream", **reply.headers}
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for delay, data in reply.events:
                if delay and self._server.provider.pause(delay):
                    return  # the server is stopping
                if data is None:
                    self._drop_connection()
                    return
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _drop_connection(self) -> None:
        """Close the socket with a TCP reset, without writing a response."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()


def _parse_json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


# --------------------------------------------------------------------------- the provider


class FakeProvider:
    """A scriptable fake OpenAI / Azure OpenAI / Anthropic server on 127.0.0.1."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._faults: deque[Fault] = deque()
        self._calls = 0
        self._generation = 0  # reset() count
        self.requests: list[RecordedRequest] = []
        self._set_defaults()

    def _set_defaults(self) -> None:
        self.responder: Callable[[RecordedRequest], str] = default_responder
        self.reply_text: str | None = None
        self.finish_reason: str = DEFAULT_FINISH_REASON
        self.usage: Usage = Usage()
        # The model name successful (non-streamed) replies claim; None: the requested one.
        self.reply_model: str | None = None
        # (status, message): GET /v1/models answers with that error instead of the list.
        self.models_error: tuple[int, str] | None = None
        # Headers added to every successful provider reply (e.g. LiteLLM's
        # x-litellm-response-cost).
        self.response_headers: dict[str, str] = {}
        self.delay: float = 0.0
        # Seconds before each text delta of a streamed reply (``"stream": true``).
        self.stream_delay: float = 0.0
        self.fail_all_with: int | None = None
        # Batch endpoints, their state and scripting (tests/fake_batches.py).
        from tests.fake_batches import FakeBatchAPI

        self.batch_api = FakeBatchAPI(self)
        self.models: list[str] = list(DEFAULT_MODELS)
        # POST /v1/moderations flags an input containing any of these (case-insensitive).
        self.moderation_terms: tuple[str, ...] = ()
        # Responses API: calls each hosted tool the request offers makes (tests/fake_responses.py).
        self.tool_calls_per_tool = 1
        # Responses API: the web searches ``tool_usage`` reports; None: those made.
        self.web_searches_reported: Any = None
        # The most provider calls this server was answering at the same time.
        self.max_in_flight = 0
        self._in_flight = 0
        # Seconds GET /v1/models waits before answering, and the most such requests
        # held at the same time.
        self.models_delay: float = 0.0
        self.max_models_in_flight = 0
        self._models_in_flight = 0

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> FakeProvider:
        if self._server is not None:
            raise RuntimeError("FakeProvider is already running")
        self._stopping.clear()
        self._server = _Server(("127.0.0.1", 0), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-provider-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()  # wakes handlers sleeping on a delay
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeProvider:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ----------------------------------------------------------------- addresses

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeProvider is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.url

    @property
    def azure_endpoint(self) -> str:
        return self.url

    # ----------------------------------------------------------------- records and script

    @property
    def calls(self) -> int:
        """Number of provider-endpoint requests received (``/v1/models`` excluded)."""
        with self._lock:
            return self._calls

    @property
    def provider_requests(self) -> list[RecordedRequest]:
        """Recorded provider-endpoint requests only, oldest first."""
        with self._lock:
            return [request for request in self.requests if request.call_number]

    @property
    def last_request(self) -> RecordedRequest:
        """The most recent provider-endpoint request."""
        provider_requests = self.provider_requests
        if not provider_requests:
            raise LookupError("no provider request recorded yet")
        return provider_requests[-1]

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    @property
    def connections_opened(self) -> int:
        """TCP connections accepted since start(); shows whether clients keep connections alive."""
        return self._server.connections_opened if self._server else 0

    def bodies_text(self) -> str:
        """Every recorded request body, decoded and joined (to assert what was never sent)."""
        with self._lock:
            raws = [request.raw for request in self.requests]
        return "\n".join(raw.decode("utf-8", errors="replace") for raw in raws)

    def reset(self) -> None:
        """Forget records and faults and restore every setting to its default."""
        with self._lock:
            self.requests.clear()
            self._faults.clear()
            self._calls = 0
            self._generation += 1
        self._set_defaults()

    def enqueue_fault(
        self,
        *,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
        raw_body: bytes | None = None,
        drop: bool = False,
        message: str | None = None,
        times: int = 1,
        stream_error: int | None = None,
        stream_drop: bool = False,
        stream_after: int = 1,
    ) -> Fault:
        """Queue a one-shot behaviour (``times`` copies) for the next provider requests, FIFO.

        ``status``: answer with that status and a provider-shaped error body (``message``);
        ``delay``: wait that many seconds first (then succeed unless ``status``/``drop``);
        ``raw_body``: answer with these bytes verbatim (status 200 unless ``status``);
        ``drop``: close the connection without any response (after ``delay``);
        ``stream_error`` / ``stream_drop`` (streamed requests): after ``stream_after`` text
        deltas, send an error event of that status's kind / close the connection.
        """
        fault = Fault(
            status=status,
            headers=dict(headers or {}),
            delay=delay,
            raw_body=raw_body,
            drop=drop,
            message=message,
            stream_error=stream_error,
            stream_drop=stream_drop,
            stream_after=stream_after,
        )
        with self._lock:
            self._faults.extend([fault] * times)
        return fault

    # ----------------------------------------------------------------- request handling

    def handle(self, record: RecordedRequest) -> Reply:
        """Record a request and build its reply (runs in the handler thread)."""
        batch_route = self.batch_api.route_for(record.method, record.path)
        if batch_route is not None:
            self._record(record, is_call=False)
            return self.batch_api.reply(batch_route, record)
        route = route_for(record.method, record.path)
        fault = self._record(record, is_call=route not in (None, MODELS, MODERATIONS))
        if route is None:
            message = f"Unknown request URL: {record.method} {record.path}"
            return json_reply(404, openai_error(404, message))
        if route == MODERATIONS:
            return json_reply(200, moderation_result(record.body, self.moderation_terms))
        if route == MODELS and self.models_error is not None:
            status, message = self.models_error
            return json_reply(status, openai_error(status, message), _request_id_headers(0))
        if route == MODELS:
            self._hold_models_request()
            return json_reply(200, models_list(self.models), _request_id_headers(0))
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            self._stopping.wait(self.delay + (fault.delay if fault else 0.0))
            return self._provider_reply(route, record, fault)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _hold_models_request(self) -> None:
        if not self.models_delay:
            return
        with self._lock:
            self._models_in_flight += 1
            self.max_models_in_flight = max(self.max_models_in_flight, self._models_in_flight)
            generation = self._generation
        try:
            self._stopping.wait(self.models_delay)
        finally:
            with self._lock:
                if generation == self._generation:  # not counted again after a reset()
                    self._models_in_flight -= 1

    def _record(self, record: RecordedRequest, *, is_call: bool) -> Fault | None:
        """Append the record; for a provider call, number it and pop the next fault."""
        with self._lock:
            if is_call:
                self._calls += 1
                record.call_number = self._calls
            self.requests.append(record)
            if is_call and self._faults:
                return self._faults.popleft()
        return None

    def _provider_reply(self, route: str, record: RecordedRequest, fault: Fault | None) -> Reply:
        if fault and fault.drop:
            return Reply(drop=True)
        headers = {
            **_request_id_headers(record.call_number),
            **self.response_headers,
            **(fault.headers if fault else {}),
        }
        status = fault.status if fault and fault.status is not None else self.fail_all_with
        if fault and fault.raw_body is not None:
            return Reply(status=status or 200, body=fault.raw_body, headers=headers)
        if status is not None and status >= 400:
            message = (fault.message if fault else None) or f"Fake provider error {status}"
            return self._error_reply(route, status, message, headers)
        if isinstance(record.body, dict) and record.body.get("stream"):
            return self._stream_reply(route, record, fault, headers)
        try:
            payload = self._success_payload(route, record)
        except Exception as exc:  # a responder bug must surface in the test, not hang it
            message = f"fake provider could not build a reply: {exc!r}"
            return self._error_reply(route, 500, message, headers)
        return json_reply(200, payload, headers)

    def _error_reply(
        self, route: str, status: int, message: str, headers: Mapping[str, str]
    ) -> Reply:
        build = anthropic_error if route == ANTHROPIC else openai_error
        return json_reply(status, build(status, message), headers)

    def pause(self, seconds: float) -> bool:
        """Wait ``seconds``; True when the server is stopping meanwhile."""
        return self._stopping.wait(seconds)

    def _stream_reply(
        self, route: str, record: RecordedRequest, fault: Fault | None, headers: dict[str, str]
    ) -> Reply:
        """Server-sent events, ``stream_delay`` before each text delta; a fault's
        ``stream_error`` / ``stream_drop`` cuts the stream after ``stream_after`` deltas."""
        text = self.reply_text if self.reply_text is not None else self.responder(record)
        build = self._stream_builder(route)
        try:
            opening, deltas, closing = build(
                record.body, text, self.usage, self.finish_reason, record.call_number
            )
        except Exception as exc:  # a responder bug must surface in the test, not hang it
            message = f"fake provider could not build a reply: {exc!r}"
            return self._error_reply(route, 500, message, headers)
        events: list[tuple[float, bytes | None]] = [(0.0, event) for event in opening]
        events += [(self.stream_delay, event) for event in deltas]
        if fault and (fault.stream_error or fault.stream_drop):
            del events[len(opening) + fault.stream_after :]
            status, message = fault.stream_error or 500, fault.message or "Stream interrupted"
            cut = None if fault.stream_drop else stream_error_event(route, status, message)
            events.append((0.0, cut))
        else:
            events += [(0.0, event) for event in closing]
        return Reply(status=200, headers=headers, events=events)

    def _success_payload(self, route: str, record: RecordedRequest) -> dict[str, Any]:
        text = self.reply_text if self.reply_text is not None else self.responder(record)
        body = record.body if isinstance(record.body, dict) else {}
        build = self._payload_builder(route)
        payload = build(body, text, self.usage, self.finish_reason, record.call_number)
        if self.reply_model is not None:
            payload["model"] = self.reply_model
        return payload

    def _payload_builder(self, route: str) -> Callable[..., dict[str, Any]]:
        if route == RESPONSES:
            from tests.fake_responses import openai_response

            return functools.partial(
                openai_response,
                per_tool=self.tool_calls_per_tool,
                searches_reported=self.web_searches_reported,
            )
        return anthropic_message if route == ANTHROPIC else openai_completion

    def _stream_builder(self, route: str) -> Callable[..., tuple[list[bytes], ...]]:
        if route == RESPONSES:
            from tests.fake_responses import responses_stream_events

            return functools.partial(
                responses_stream_events,
                per_tool=self.tool_calls_per_tool,
                searches_reported=self.web_searches_reported,
            )
        return anthropic_stream_events if route == ANTHROPIC else openai_stream_events


def _request_id_headers(number: int) -> dict[str, str]:
    request_id = f"req_fake_{number}"
    return {"x-request-id": request_id, "request-id": request_id}


@contextlib.contextmanager
def running_fake_provider() -> Iterator[FakeProvider]:
    """Start a FakeProvider for the duration of a ``with`` block."""
    provider = FakeProvider()
    provider.start()
    try:
        yield provider
    finally:
        provider.stop()
