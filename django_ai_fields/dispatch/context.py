"""Job context: what a worker needs to see the data a job was requested on, captured
where jobs are handed over and restored where their task starts (jobs/tasks.py's
``entry_point``).

A context is plain JSON, so any task backend can carry it::

    {"db": "default",        # the database the jobs are in: the row's, the primary
     "schema": "acme",       # django-tenants: the schema the row was saved in
     "extra": {...}}         # what AI_FIELDS["JOB_CONTEXT"] captured (other schemes)

Inside ``restore(context)`` the app's models use that database (databases.pinned),
the connection is in that schema, and the hook's own context is entered. Periodic
tasks (the sweep, the batch poll) ``visit`` every database and schema holding jobs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from django.db import connections, router
from django.utils.module_loading import import_string

from .. import databases
from ..conf import get_setting
from ..models import AIJob
from ..tenants import schemas

Context = dict[str, Any]

_active: ContextVar[Context | None] = ContextVar("ai_fields_job_context", default=None)
_hooks: dict[str, ContextHook] = {}


class ContextHook:
    """Base of an ``AI_FIELDS["JOB_CONTEXT"]`` hook, for multi-tenancy schemes the app
    does not detect itself (docs/deployment.md#other-schemes-job_context). Subclass it
    and name the class by its dotted path; what ``capture`` returns must be JSON."""

    def capture(self, using: str) -> dict[str, Any]:
        """What a worker needs, taken where jobs are requested ({}: nothing)."""
        return {}

    @contextmanager
    def restore(self, data: dict[str, Any], using: str) -> Iterator[None]:
        """Enter ``data`` (as ``capture`` returned it) around a task's work."""
        yield

    def each(self, using: str) -> Iterable[dict[str, Any]]:
        """The contexts the periodic tasks (sweep, batch poll, ai_status) visit on
        database ``using``; each job also keeps its own, recorded at the save."""
        return [{}]


def hook() -> ContextHook | None:
    path = get_setting("JOB_CONTEXT")
    if not path:
        return None
    if path not in _hooks:
        _hooks[path] = import_string(path)()
    return _hooks[path]


def default_database() -> str:
    return router.db_for_write(AIJob)


def capture(using: str | None = None) -> Context:
    """The context of work requested here, on database ``using`` (the pinned one, or
    AIJob's write database, by default). No query."""
    alias = using or databases.pinned_alias() or default_database()
    context: Context = {"db": alias}
    schema = databases.schema_of(alias)
    if schema:
        context["schema"] = schema
    extension = hook()
    if extension is not None:
        extra = extension.capture(alias)
        if extra:
            context["extra"] = extra
    return context


def current() -> Context:
    """The context restored around this code, else the one captured here."""
    return _active.get() or capture()


@contextmanager
def restore(context: Context | None) -> Iterator[Context]:
    """Work inside ``context`` (None: the one here, ``current()``)."""
    context = dict(context) if context else current()
    alias = context.get("db") or default_database()
    if alias not in connections:
        raise ValueError(f"The job context names database {alias!r}, which is not configured.")
    context["db"] = alias
    with ExitStack() as stack:
        stack.enter_context(databases.pinned(alias))
        if context.get("schema"):
            stack.enter_context(schemas.within(alias, context["schema"]))
        extension = hook()
        if extension is not None:
            stack.enter_context(extension.restore(context.get("extra") or {}, alias))
        token = _active.set(context)
        stack.callback(_active.reset, token)
        yield context


def key(context: Context) -> str:
    """A short name for ``context``; "" for the default one (AIJob's write database,
    no schema, no hook data), whose drains and marks keep their plain names."""
    if context.keys() <= {"db"} and context.get("db", default_database()) == default_database():
        return ""
    text = json.dumps(context, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# -- periodic tasks: every database and schema ----------------------------------------


def job_databases() -> list[str]:
    """The databases holding jobs: ``AI_FIELDS["JOB_DATABASES"]``, or every configured
    one the router writes AIJob rows to and migrates AIJob on (a replica is left out:
    the router sends writes of its rows elsewhere)."""
    configured = get_setting("JOB_DATABASES")
    if configured:
        return list(configured)
    probe = AIJob()
    found = []
    for alias in settings.DATABASES:
        if connections[alias].settings_dict.get("TEST", {}).get("MIRROR"):
            continue
        probe._state.db = alias
        if router.db_for_write(AIJob, instance=probe) != alias:
            continue
        if not schemas.active(alias) and not router.allow_migrate_model(alias, AIJob):
            continue
        found.append(alias)
    return found or [default_database()]


def visits() -> Iterator[Context]:
    """Every context periodic work visits: each job database, each schema in it
    holding a job table, each context the hook names there."""
    extension = hook()
    for alias in job_databases():
        for schema in schemas.job_schemas(alias):
            for extra in extension.each(alias) if extension is not None else [{}]:
                context: Context = {"db": alias}
                if schema:
                    context["schema"] = schema
                if extra:
                    context["extra"] = extra
                yield context


def mixed(visit: Context) -> bool:
    """Whether the job table seen from ``visit`` holds jobs of other contexts (one job
    table shared by schemas, or a hook's contexts): each job then carries its own."""
    shared = databases.shared_job_table() and schemas.active(visit["db"])
    return shared or hook() is not None


def of_job(visit: Context, schema: str, extra: dict[str, Any] | None) -> Context:
    """The context of a job found on a visit, from what it recorded at its save."""
    context: Context = {"db": visit["db"]}
    if schema or visit.get("schema"):
        context["schema"] = schema or visit["schema"]
    if extra or visit.get("extra"):
        context["extra"] = extra or visit["extra"]
    return context


def split(visit: Context, job_ids: Sequence[int]) -> list[tuple[Context, list[int]]]:
    """``job_ids`` (found on ``visit``) grouped by their own context, in order."""
    if not job_ids:
        return []
    if not mixed(visit):
        return [(visit, list(job_ids))]
    recorded = {
        pk: of_job(visit, schema, extra)
        for pk, schema, extra in AIJob.objects.db_manager(visit["db"])
        .filter(pk__in=job_ids)
        .values_list("pk", "schema", "context")
    }
    groups: dict[str, tuple[Context, list[int]]] = {}
    for pk in job_ids:
        context = recorded.get(pk, visit)
        groups.setdefault(key(context), (context, []))[1].append(pk)
    return list(groups.values())
