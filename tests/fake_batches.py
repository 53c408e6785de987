"""The batch endpoints of the fake provider (tests/fake_provider.py).

OpenAI's Batch API (``POST /v1/files`` multipart upload, ``POST /v1/batches``,
``GET /v1/batches/{id}``, ``GET /v1/files/{id}/content``) and Anthropic's Message
Batches (``POST /v1/messages/batches``, ``GET /v1/messages/batches/{id}``,
``GET /v1/messages/batches/{id}/results``), as the real SDKs call them.

A batch ends at its ``polls_to_end``-th retrieve (1: the first retrieve already
shows it ended). Then each of its requests is answered as the normal endpoint
would answer it, in order: it counts as a provider call (``fp.calls``, a
``RecordedRequest`` with the ``x-fake-batch`` header), and scripted faults,
``fail_all_with``, ``reply_text``/``responder`` and ``usage`` apply to it. The
batch endpoints themselves are recorded like ``/v1/models`` (not calls, no faults).

Scripting (``fp.batch_api``): ``polls_to_end``; ``outcome`` "completed" (default),
"expired" (no request runs: OpenAI ``batch_expired`` error lines, Anthropic
``expired`` results) or "failed" (OpenAI: the batch fails validation; Anthropic:
every request errors); ``create_status``: the create endpoints answer with this
HTTP error instead.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tests.fake_provider import (
    ANTHROPIC,
    OPENAI,
    RESPONSES,
    RecordedRequest,
    Reply,
    anthropic_error,
    json_reply,
    openai_error,
)

if TYPE_CHECKING:
    from tests.fake_provider import FakeProvider

FILES = "files"
FILE_CONTENT = "file-content"
OPENAI_CREATE = "openai-batch-create"
OPENAI_RETRIEVE = "openai-batch-retrieve"
ANTHROPIC_CREATE = "anthropic-batch-create"
ANTHROPIC_RETRIEVE = "anthropic-batch-retrieve"
ANTHROPIC_RESULTS = "anthropic-batch-results"

_ROUTES = [
    ("POST", re.compile(r"^/v1/files$"), FILES),
    ("GET", re.compile(r"^/v1/files/(?P<id>[^/]+)/content$"), FILE_CONTENT),
    ("POST", re.compile(r"^/v1/batches$"), OPENAI_CREATE),
    ("GET", re.compile(r"^/v1/batches/(?P<id>[^/]+)$"), OPENAI_RETRIEVE),
    ("POST", re.compile(r"^/v1/messages/batches$"), ANTHROPIC_CREATE),
    ("GET", re.compile(r"^/v1/messages/batches/(?P<id>[^/]+)$"), ANTHROPIC_RETRIEVE),
    ("GET", re.compile(r"^/v1/messages/batches/(?P<id>[^/]+)/results$"), ANTHROPIC_RESULTS),
]
CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
EXPIRED_MESSAGE = "This request could not be executed before the completion window expired."


@dataclass
class FakeBatch:
    id: str
    api: str  # OPENAI or ANTHROPIC
    # (custom_id, request body) in the order received.
    requests: list[tuple[str, dict[str, Any]]]
    created_at: float = field(default_factory=time.time)
    input_file_id: str = ""
    # The OpenAI batch's endpoint: /v1/chat/completions or /v1/responses.
    endpoint: str = "/v1/chat/completions"
    # Why an OpenAI batch fails validation ("" when it passes).
    invalid: str = ""
    polls: int = 0
    ended_at: float | None = None
    status: str = ""  # final OpenAI status / "ended"
    # Per request: (custom_id, HTTP status or None when it never ran, response body).
    answers: list[tuple[str, int | None, Any]] = field(default_factory=list)
    output_file_id: str | None = None
    error_file_id: str | None = None


class FakeBatchAPI:
    """Batch state and scripting of one FakeProvider; fresh after ``fp.reset()``."""

    def __init__(self, provider: FakeProvider) -> None:
        self.provider = provider
        self.polls_to_end = 1
        self.outcome = "completed"
        self.create_status: int | None = None
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, FakeBatch] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()  # one batch request at a time: state stays consistent

    # ----------------------------------------------------------------- routing

    @staticmethod
    def route_for(method: str, path: str) -> tuple[str, str] | None:
        """(route, id in the path) of a batch endpoint, or None."""
        for verb, pattern, route in _ROUTES:
            match = pattern.match(path)
            if method == verb and match:
                return route, match.groupdict().get("id") or ""
        return None

    def reply(self, route: tuple[str, str], record: RecordedRequest) -> Reply:
        name, object_id = route
        with self._lock:
            if name == FILES:
                return self.upload(record)
            if name == FILE_CONTENT:
                return self.file_content(object_id)
            if name == OPENAI_CREATE:
                return self.create_openai(record)
            if name == ANTHROPIC_CREATE:
                return self.create_anthropic(record)
            batch = self.batches.get(object_id)
            api = ANTHROPIC if name.startswith("anthropic") else OPENAI
            if batch is None or batch.api != api:
                return error_reply(api, 404, f"No batch {object_id!r}.")
            if name == ANTHROPIC_RESULTS:
                return self.anthropic_results(batch)
            batch.polls += 1
            if batch.ended_at is None and batch.polls >= self.polls_to_end:
                self.end(batch)
            body = openai_batch(batch) if api == OPENAI else self.anthropic_batch(batch)
            return json_reply(200, body)

    # ----------------------------------------------------------------- OpenAI

    def upload(self, record: RecordedRequest) -> Reply:
        form = multipart_form(record.headers.get("content-type", ""), record.raw)
        if "file" not in form or form.get("purpose") != b"batch":
            return json_reply(400, openai_error(400, "Expected a file and purpose=batch."))
        file_id = f"file-fake-{next(self._ids)}"
        self.files[file_id] = form["file"]
        return json_reply(
            200,
            {
                "id": file_id,
                "object": "file",
                "bytes": len(form["file"]),
                "created_at": int(time.time()),
                "filename": "requests.jsonl",
                "purpose": "batch",
                "status": "processed",
            },
        )

    def file_content(self, file_id: str) -> Reply:
        if file_id not in self.files:
            return json_reply(404, openai_error(404, f"No file {file_id!r}."))
        headers = {"Content-Type": "application/octet-stream"}
        return Reply(status=200, body=self.files[file_id], headers=headers)

    def create_openai(self, record: RecordedRequest) -> Reply:
        if self.create_status:
            return error_reply(OPENAI, self.create_status, "Fake batch creation error")
        body = record.body if isinstance(record.body, dict) else {}
        data = self.files.get(str(body.get("input_file_id")))
        if data is None or body.get("completion_window") != "24h":
            return json_reply(400, openai_error(400, "Unknown input_file_id or window."))
        batch = FakeBatch(id=f"batch_fake_{next(self._ids)}", api=OPENAI, requests=[])
        batch.input_file_id = str(body["input_file_id"])
        batch.endpoint = str(body.get("endpoint"))
        batch.invalid = read_openai_lines(data, batch.endpoint, batch.requests)
        self.batches[batch.id] = batch
        return json_reply(200, openai_batch(batch))

    # ----------------------------------------------------------------- Anthropic

    def create_anthropic(self, record: RecordedRequest) -> Reply:
        if self.create_status:
            return error_reply(ANTHROPIC, self.create_status, "Fake batch creation error")
        body = record.body if isinstance(record.body, dict) else {}
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            return error_reply(ANTHROPIC, 400, "requests: a non-empty list is required")
        ids = [str(r.get("custom_id")) for r in requests if isinstance(r, dict)]
        bad = [i for i in ids if not CUSTOM_ID.match(i)]
        if len(ids) != len(requests) or bad or len(set(ids)) != len(ids):
            return error_reply(ANTHROPIC, 400, f"Invalid or repeated custom_id: {bad or ids}")
        batch = FakeBatch(
            id=f"msgbatch_fake_{next(self._ids)}",
            api=ANTHROPIC,
            requests=[(str(r["custom_id"]), r.get("params") or {}) for r in requests],
        )
        self.batches[batch.id] = batch
        return json_reply(200, self.anthropic_batch(batch))

    def anthropic_batch(self, batch: FakeBatch) -> dict[str, Any]:
        ended = batch.ended_at is not None
        kinds = [anthropic_result(status, body)["type"] for _id, status, body in batch.answers]
        counts = {kind: kinds.count(kind) for kind in ("succeeded", "errored", "expired")}
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": "ended" if ended else "in_progress",
            "request_counts": {
                "processing": 0 if ended else len(batch.requests),
                "canceled": 0,
                **counts,
            },
            "created_at": iso(batch.created_at),
            "expires_at": iso(batch.created_at + 86400),
            "ended_at": iso(batch.ended_at) if ended else None,
            "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": (
                f"{self.provider.url}/v1/messages/batches/{batch.id}/results" if ended else None
            ),
        }

    def anthropic_results(self, batch: FakeBatch) -> Reply:
        if batch.ended_at is None:
            return error_reply(ANTHROPIC, 400, "The batch is still processing.")
        lines = [
            json.dumps({"custom_id": custom_id, "result": anthropic_result(status, body)})
            for custom_id, status, body in batch.answers
        ]
        data = ("\n".join(lines) + "\n").encode()
        return Reply(status=200, body=data, headers={"Content-Type": "application/x-jsonl"})

    # ----------------------------------------------------------------- ending a batch

    def end(self, batch: FakeBatch) -> None:
        """Answer each request (or none, when the outcome says so)."""
        batch.ended_at = time.time()
        outcome = "failed" if batch.invalid else self.outcome
        if outcome == "failed" and batch.api == OPENAI:
            batch.invalid = batch.invalid or "Fake batch failure"
        route, path = (
            (ANTHROPIC, "/v1/messages")
            if batch.api == ANTHROPIC
            else (RESPONSES if batch.endpoint == "/v1/responses" else OPENAI, batch.endpoint)
        )
        for custom_id, body in batch.requests:
            if outcome == "completed":
                status, answer = self.answer(route, path, batch, body)
            elif outcome == "failed" and batch.api == ANTHROPIC:
                status, answer = 500, anthropic_error(500, "Fake batch request error")
            else:
                status, answer = None, None
            batch.answers.append((custom_id, status, answer))
        batch.status = {"completed": "completed", "expired": "expired"}.get(outcome, "failed")
        if batch.api == OPENAI and batch.status != "failed":
            self.write_openai_files(batch)

    def answer(
        self, route: str, path: str, batch: FakeBatch, body: dict[str, Any]
    ) -> tuple[int, Any]:
        """The normal endpoint's answer to one request of the batch (a provider call)."""
        provider = self.provider
        record = RecordedRequest(
            method="POST",
            path=path,
            query={},
            headers={"x-fake-batch": batch.id},
            body=body,
            raw=json.dumps(body).encode(),
        )
        fault = provider._record(record, is_call=True)
        reply = provider._provider_reply(route, record, fault)
        if reply.drop:
            return 500, (openai_error if route == OPENAI else anthropic_error)(500, "Dropped")
        try:
            return reply.status, json.loads(reply.body)
        except ValueError:
            return reply.status, reply.body.decode("utf-8", errors="replace")

    def write_openai_files(self, batch: FakeBatch) -> None:
        output, errors = [], []
        for number, (custom_id, status, body) in enumerate(batch.answers, 1):
            line: dict[str, Any] = {"id": f"batch_req_fake_{number}", "custom_id": custom_id}
            if status is None:
                line.update(
                    response=None, error={"code": "batch_expired", "message": EXPIRED_MESSAGE}
                )
            else:
                response = {
                    "status_code": status,
                    "request_id": f"req_fake_b{number}",
                    "body": body,
                }
                line.update(response=response, error=None)
            (output if status == 200 else errors).append(json.dumps(line))
        for lines, attribute in ((output, "output_file_id"), (errors, "error_file_id")):
            if lines:
                file_id = f"file-fake-{next(self._ids)}"
                self.files[file_id] = ("\n".join(lines) + "\n").encode()
                setattr(batch, attribute, file_id)


# --------------------------------------------------------------------------- payloads


def read_openai_lines(data: bytes, endpoint: str, into: list[tuple[str, dict[str, Any]]]) -> str:
    """Read a batch input file into ``into``; returns why it is invalid, or ""."""
    models = set()
    for number, text in enumerate(data.decode().splitlines(), 1):
        try:
            line = json.loads(text)
            custom_id, body = str(line["custom_id"]), line["body"]
        except (ValueError, KeyError, TypeError):
            return f"Line {number} is not a valid request."
        if line.get("method") != "POST" or line.get("url") != endpoint:
            return f"Line {number}: method/url must be POST {endpoint}."
        if any(custom_id == seen for seen, _body in into):
            return f"Line {number}: custom_id {custom_id!r} is repeated."
        models.add(body.get("model"))
        into.append((custom_id, body))
    if len(models) > 1:
        return "All requests of a batch must use the same model."
    return "" if into else "The file holds no requests."


def openai_batch(batch: FakeBatch) -> dict[str, Any]:
    ended = batch.ended_at is not None
    status = batch.status if ended else ("validating" if batch.polls == 0 else "in_progress")
    failed = sum(1 for _id, code, _body in batch.answers if code != 200)
    stamp = int(batch.ended_at) if ended else None
    errors = None
    if batch.invalid and ended:
        error = {"code": "invalid_request", "message": batch.invalid, "param": None, "line": None}
        errors = {"object": "list", "data": [error]}
    return {
        "id": batch.id,
        "object": "batch",
        "endpoint": batch.endpoint,
        "errors": errors,
        "input_file_id": batch.input_file_id,
        "completion_window": "24h",
        "status": status,
        "output_file_id": batch.output_file_id,
        "error_file_id": batch.error_file_id,
        "created_at": int(batch.created_at),
        "in_progress_at": int(batch.created_at),
        "expires_at": int(batch.created_at) + 86400,
        "finalizing_at": stamp,
        "completed_at": stamp if status == "completed" else None,
        "failed_at": stamp if status == "failed" else None,
        "expired_at": stamp if status == "expired" else None,
        "cancelling_at": None,
        "cancelled_at": None,
        "request_counts": {
            "total": len(batch.requests),
            "completed": len(batch.answers) - failed,
            "failed": failed,
        },
        "metadata": None,
    }


def anthropic_result(status: int | None, body: Any) -> dict[str, Any]:
    if status is None:
        return {"type": "expired"}
    if status == 200 and isinstance(body, dict):
        return {"type": "succeeded", "message": body}
    if not isinstance(body, dict) or body.get("type") != "error":
        body = anthropic_error(500, f"Unreadable answer: {body!r}")
    return {"type": "errored", "error": body}


def error_reply(api: str, status: int, message: str) -> Reply:
    build = anthropic_error if api == ANTHROPIC else openai_error
    return json_reply(status, build(status, message))


def multipart_form(content_type: str, raw: bytes) -> dict[str, bytes]:
    """The fields of a multipart/form-data body, by name."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
    form: dict[str, bytes] = {}
    for part in message.iter_parts():  # type: ignore[attr-defined]
        name = part.get_param("name", header="content-disposition")
        if name:
            form[str(name)] = part.get_payload(decode=True) or b""
    return form


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")
