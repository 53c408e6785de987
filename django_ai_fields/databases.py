"""Where the app's queries go: the database a job's work is pinned to, and the
django-tenants schema the job table is seen from.

- **A pin** (``pinned(alias)``, set by ``dispatch.context.restore`` around every task and
  every hand-over): inside it, the app's models (``AppManager``) read and write that
  database, so a worker decides on what the primary holds (not a lagging replica)
  and a row saved through ``using("other")`` has its jobs, usage and write-back there.
  Outside a pin, Django's routers apply as usual: reporting may read a replica.
- **Decisions about other models** (the target row's load and guarded write-back):
  ``for_decisions(model)``, the pinned database or ``router.db_for_write(model)``.
- **Schemas** (django-tenants, never imported here): with the app in ``SHARED_APPS``
  only, one job table in ``public`` holds the jobs of every tenant schema, each job
  recording its row's schema; seen from a tenant schema, it shows that schema's jobs
  only, as that schema's own table would.

At the bottom of the package: it knows Django and settings, nothing of the app.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, TypeVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, models, router, transaction

if TYPE_CHECKING:
    from django.db.models import QuerySet

M = TypeVar("M", bound=models.Model)

APP_NAME = "django_ai_fields"

_pinned: ContextVar[str | None] = ContextVar("ai_fields_pinned_database", default=None)


@contextmanager
def pinned(alias: str) -> Iterator[None]:
    """Inside: the app's models use database ``alias``."""
    token = _pinned.set(alias)
    try:
        yield
    finally:
        _pinned.reset(token)


def pinned_alias() -> str | None:
    return _pinned.get()


def atomic(model: type[models.Model] | None = None) -> transaction.Atomic:
    """A transaction on the pinned database; outside a pin, on ``model``'s write
    database (the default database without a model)."""
    using = _pinned.get() or (router.db_for_write(model) if model is not None else None)
    return transaction.atomic(using=using)


def on_commit(func: Callable[[], object], *, robust: bool = False) -> None:
    """``func`` once the pinned database's transaction commits (at once outside one)."""
    transaction.on_commit(func, using=_pinned.get(), robust=robust)


def for_decisions(model: type[models.Model]) -> str:
    """The database whose data a decision about ``model``'s rows must see: the pinned
    one, else the router's write database (never a replica that may lag)."""
    return _pinned.get() or router.db_for_write(model)


# -- schemas (django-tenants) ---------------------------------------------------------


def schema_of(alias: str) -> str:
    """The django-tenants schema connection ``alias`` is set to ("" without django-tenants)."""
    return getattr(connections[alias], "schema_name", None) or ""


def current_schema() -> str:
    """AIJob.schema's default: the schema of the database the job goes to."""
    return schema_of(_pinned.get() or tenant_alias())


def tenant_alias() -> str:
    return getattr(settings, "TENANT_DB_ALIAS", DEFAULT_DB_ALIAS)


def public_schema() -> str:
    return getattr(settings, "PUBLIC_SCHEMA_NAME", "public")


def app_listed(setting: str, app: str = APP_NAME) -> bool:
    """Whether ``app`` (by name or AppConfig path) is in settings.SHARED_APPS/TENANT_APPS."""
    listed = getattr(settings, setting, None) or ()
    return any(entry == app or entry.startswith(app + ".apps.") for entry in listed)


def shared_job_table() -> bool:
    """The app is in SHARED_APPS and not TENANT_APPS: one job table, in public."""
    return app_listed("SHARED_APPS") and not app_listed("TENANT_APPS")


def scoped_schema(alias: str | None) -> str:
    """The schema a shared job table is filtered to from here ("" for none: no
    django-tenants, jobs in the schema's own table, or public, which sees all)."""
    if not shared_job_table():
        return ""
    schema = schema_of(alias or tenant_alias())
    return "" if schema == public_schema() else schema


# -- the manager ------------------------------------------------------------------------


class AppManager(models.Manager[M]):
    """The app's models' manager: the pinned database inside a pin (``pinned``);
    Django's routing outside it."""

    def get_queryset(self) -> QuerySet[M]:
        queryset = super().get_queryset()
        alias = _pinned.get()
        return queryset.using(alias) if alias is not None and self._db is None else queryset


class JobManager(AppManager[M]):
    """AIJob's manager: also, with one shared job table (django-tenants, the app in
    SHARED_APPS), a tenant schema sees its own jobs only."""

    def get_queryset(self) -> QuerySet[M]:
        queryset = super().get_queryset()
        schema = scoped_schema(self._db or _pinned.get())
        return queryset.filter(schema=schema) if schema else queryset
