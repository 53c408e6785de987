"""System checks of the deployment shape (docs/deployment.md): configurations in
which jobs would wait ``queued`` forever without a word.

- E050 ``JOB_CONTEXT`` names no ContextHook subclass.
- E051 the app is in ``TENANT_APPS`` but the database has no schema support
  (django-tenants' backend): workers would look for jobs in ``public``.
- E052 django-tenants is configured and the app is in neither ``SHARED_APPS`` nor
  ``TENANT_APPS``: its tables are never created.
- E053 ``JOB_DATABASES`` names a database that is not configured.
- W050 one job table shared by every schema, and no ``TENANT_RESOLVER``: quotas,
  budgets and usage are counted for all tenants together.
- W051 a model's rows are written to a database whose jobs the app never visits
  (the router sends AIJob elsewhere): the admin, ``ai_status`` and the sweep miss them.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.conf import settings
from django.core import checks
from django.db import router
from django.utils.module_loading import import_string

from .conf import get_setting
from .databases import app_listed, shared_job_table, tenant_alias
from .dispatch import context
from .dispatch.context import ContextHook
from .fields import ai_fields_of
from .models import AIJob
from .tenants import schemas


def check_deployment(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    return [
        *_hook_errors(),
        *_schema_errors(),
        *_database_errors(),
    ]


def _hook_errors() -> list[checks.CheckMessage]:
    path = get_setting("JOB_CONTEXT")
    if not path:
        return []
    try:
        hook = import_string(path)
    except ImportError as exc:
        found = f"cannot be imported ({exc})"
    else:
        if isinstance(hook, type) and issubclass(hook, ContextHook):
            return []
        found = "is not a subclass of django_ai_fields.dispatch.context.ContextHook"
    return [
        checks.Error(
            f"AI_FIELDS['JOB_CONTEXT'] = {path!r} {found}.",
            hint="Name a ContextHook subclass by its dotted path (docs/deployment.md).",
            id="django_ai_fields.E050",
        )
    ]


def _schema_errors() -> list[checks.CheckMessage]:
    configured = hasattr(settings, "SHARED_APPS") or hasattr(settings, "TENANT_APPS")
    if not configured:
        return []
    alias = tenant_alias()
    if app_listed("TENANT_APPS") and not schemas.active(alias):
        return [
            checks.Error(
                "django_ai_fields is in TENANT_APPS, but database "
                f"{alias!r} has no schema support: its ENGINE is "
                f"{settings.DATABASES[alias]['ENGINE']!r}. Workers would look for the "
                "jobs in the public schema and never find them.",
                hint="Use ENGINE 'django_tenants.postgresql_backend' (pip install "
                "django-tenants), or move the app to SHARED_APPS.",
                id="django_ai_fields.E051",
            )
        ]
    if not app_listed("TENANT_APPS") and not app_listed("SHARED_APPS"):
        return [
            checks.Error(
                "django-tenants is configured, but django_ai_fields is in neither "
                "SHARED_APPS nor TENANT_APPS: its tables are never created.",
                hint="Add it to TENANT_APPS (jobs in each tenant's schema) or to "
                "SHARED_APPS (one job table in public).",
                id="django_ai_fields.E052",
            )
        ]
    if shared_job_table() and not get_setting("TENANT_RESOLVER"):
        return [
            checks.Warning(
                "django_ai_fields is in SHARED_APPS: one job table serves every schema, "
                "and without AI_FIELDS['TENANT_RESOLVER'] all schemas share the same "
                "quotas, budgets and usage figures.",
                hint="Set TENANT_RESOLVER to "
                "'django_ai_fields.tenants.schemas.schema_tenant' (the row's schema).",
                id="django_ai_fields.W050",
            )
        ]
    return []


def _database_errors() -> list[checks.CheckMessage]:
    configured = get_setting("JOB_DATABASES") or []
    unknown = [alias for alias in configured if alias not in settings.DATABASES]
    if unknown:
        return [
            checks.Error(
                f"AI_FIELDS['JOB_DATABASES'] names databases that are not configured: "
                f"{', '.join(map(repr, unknown))}.",
                id="django_ai_fields.E053",
            )
        ]
    visited = set(context.job_databases())
    messages: list[checks.CheckMessage] = []
    for model in apps.get_models():
        if not ai_fields_of(model):
            continue
        alias = router.db_for_write(model)
        if alias in visited:
            continue
        messages.append(
            checks.Warning(
                f"Rows of {model._meta.label} are written to database {alias!r}, and "
                "their AI jobs with them, but the app looks for jobs in "
                f"{', '.join(map(repr, sorted(visited)))} only (the router sends AIJob "
                f"to {router.db_for_write(AIJob)!r}): the sweep, the admin and "
                "ai_status would never see those jobs.",
                hint="Route django_ai_fields' models with the project's rows, or list "
                "every database holding jobs in AI_FIELDS['JOB_DATABASES'].",
                obj=model,
                id="django_ai_fields.W051",
            )
        )
    return messages
