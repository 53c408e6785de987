"""A JOB_CONTEXT hook for the tests: a row-level tenancy scheme of the kind the app
cannot detect, where the current organisation lives in a context variable (as a
middleware would set it, or a ``SET app.org = ...`` on the connection)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django_ai_fields.dispatch.context import ContextHook

current_org: ContextVar[str | None] = ContextVar("current_org", default=None)


class OrganisationContext(ContextHook):
    def capture(self, using: str) -> dict[str, Any]:
        org = current_org.get()
        return {"org": org} if org else {}

    @contextmanager
    def restore(self, data: dict[str, Any], using: str) -> Iterator[None]:
        token = current_org.set(data.get("org"))
        try:
            yield
        finally:
            current_org.reset(token)


def org_prompt(instance: Any) -> str:
    """A prompt that shows which organisation the worker saw."""
    return f"Describe {instance.title} for organisation {current_org.get()}"
