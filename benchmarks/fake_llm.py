"""The fake provider server of the test suite, answering Lead's fields validly."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.test import override_settings

from django_ai_fields.providers.base import clients
from tests.fake_provider import FakeProvider, RecordedRequest, running_fake_provider


def valid_answer(request: RecordedRequest) -> str:
    """A reply each Lead field accepts: JSON for ``profile``, a choice for ``heat``."""
    body = request.body if isinstance(request.body, dict) else {}
    if "response_format" in body:
        return json.dumps({"industry": "software", "employees": 12})
    system = str(body.get("messages", [{}])[0].get("content", ""))
    if "exactly one of these values" in system:
        return "warm"
    return "A promising lead from a mid-sized company."


@contextmanager
def fake_server(delay: float = 0.0) -> Iterator[FakeProvider]:
    """The server on loopback, answering after ``delay`` seconds."""
    with running_fake_provider() as server:
        restart(server, delay)
        yield server


def restart(server: FakeProvider, delay: float = 0.0) -> None:
    """Forget the server's records; answer validly after ``delay`` seconds."""
    server.reset()
    server.responder = valid_answer
    server.delay = delay


@contextmanager
def openai_at(server: FakeProvider) -> Iterator[dict[str, Any]]:
    """Point the openai provider (the real SDK) at the server and make it the default;
    yields the AI_FIELDS in force, for worker processes."""
    overrides = {
        **settings.AI_FIELDS,
        "DEFAULT_PROVIDER": "openai",
        "PROVIDERS": {
            "openai": {"API_KEY": "sk-bench", "BASE_URL": server.openai_base_url, "TIMEOUT": 30}
        },
    }
    clients.clear()
    try:
        with override_settings(AI_FIELDS=overrides):
            yield overrides
    finally:
        clients.clear()
