"""django-tenants (a schema per tenant on PostgreSQL): which schemas hold the app's job
tables, and stepping into one.

Detected, never configured: a database whose backend is django-tenants' has
``set_schema``. ``django_tenants`` itself is imported only there (it is optional).
Where the job tables are follows from where the app is listed:

- in ``TENANT_APPS``: each tenant schema has its own job table (and ``public`` too
  when the app is also in ``SHARED_APPS``);
- in ``SHARED_APPS`` only: one job table, in ``public``; each job records its row's
  schema (``AIJob.schema``) and runs there.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.core.exceptions import ImproperlyConfigured
from django.db import connections, models

from ..databases import app_listed, public_schema, schema_of, tenant_alias


def active(alias: str) -> bool:
    """Whether database ``alias`` runs on django-tenants' backend."""
    return hasattr(connections[alias], "set_schema")


@contextmanager
def within(alias: str, schema: str) -> Iterator[None]:
    """Queries on ``alias`` inside see ``schema`` (then the schema before, again).
    Nothing happens when the connection is in that schema already."""
    connection = connections[alias]
    if not active(alias):
        raise ImproperlyConfigured(
            f"A job was requested in schema {schema!r}, but database {alias!r} does not run "
            "on django-tenants' backend here (ENGINE 'django_tenants.postgresql_backend'): "
            "start the workers with the web processes' settings."
        )
    if connection.schema_name == schema:  # type: ignore[attr-defined]
        yield
        return
    previous = connection.tenant  # type: ignore[attr-defined]
    connection.set_schema(schema)  # type: ignore[attr-defined]
    try:
        yield
    finally:
        if previous is None:
            connection.set_schema_to_public()  # type: ignore[attr-defined]
        else:
            connection.set_tenant(previous)  # type: ignore[attr-defined]


def exists(alias: str, schema: str) -> bool:
    """Whether database ``alias`` has a schema named ``schema`` (PostgreSQL's
    catalogue; False where the database has no schemas)."""
    if connections[alias].vendor != "postgresql":
        return False
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema])
        return cursor.fetchone() is not None


def job_schemas(alias: str) -> list[str]:
    """The schemas of ``alias`` holding a job table ([""]: no django-tenants there)."""
    if not active(alias):
        return [""]
    public = public_schema()
    if not app_listed("TENANT_APPS"):
        return [public]
    tenants = tenant_schemas(alias)
    return [public, *tenants] if app_listed("SHARED_APPS") else tenants


def tenant_schemas(alias: str) -> list[str]:
    """Every tenant's schema (the tenant model, read in public), public left out."""
    from django_tenants.utils import get_tenant_model

    public = public_schema()
    with within(alias, public):
        names = (
            get_tenant_model()
            .objects.using(alias)
            .exclude(schema_name=public)
            .order_by("schema_name")
            .values_list("schema_name", flat=True)
        )
        return [str(name) for name in names]


def schema_tenant(instance: models.Model) -> str:
    """A ``TENANT_RESOLVER``: the schema the row was saved in. With the app in
    SHARED_APPS, quotas, usage and the admin's tenant scoping then go by schema."""
    return schema_of(instance._state.db or tenant_alias())
