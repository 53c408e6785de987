"""Settings of the django-tenants project (tests/deployment/test_tenants.py): its own
PostgreSQL database and Redis database, the app in TENANT_APPS or SHARED_APPS
(``TENANTS_PLACEMENT``), the fake provider's AI_FIELDS from the environment."""

from __future__ import annotations

import json
import os
from urllib.parse import urlsplit

SECRET_KEY = "tenants-tests-only"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
ROOT_URLCONF = "tests.deployment.tenants.urls"

PLACEMENT = os.environ.get("TENANTS_PLACEMENT", "tenant")  # "tenant" | "shared"
_app = ["django_ai_fields"]

SHARED_APPS = [
    "django_tenants",
    "tests.deployment.tenants.customers",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django_rq",
    "import_export",
    *(_app if PLACEMENT == "shared" else []),
]
TENANT_APPS = [
    "django.contrib.contenttypes",
    "tests.deployment.tenants.crm",
    *(_app if PLACEMENT == "tenant" else []),
]
INSTALLED_APPS = [*SHARED_APPS, *(app for app in TENANT_APPS if app not in SHARED_APPS)]
TENANT_MODEL = "customers.Client"
TENANT_DOMAIN_MODEL = "customers.Domain"
DATABASE_ROUTERS = ["django_tenants.routers.TenantSyncRouter"]

_url = urlsplit(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test"))
DATABASES = {
    "default": {
        "ENGINE": "django_tenants.postgresql_backend",
        "NAME": os.environ.get("TENANTS_DB_NAME", "ai_fields_tenants"),
        "USER": _url.username or "postgres",
        "PASSWORD": _url.password or "",
        "HOST": _url.hostname or "127.0.0.1",
        "PORT": str(_url.port or 5432),
    }
}

RQ_QUEUES = {"default": {"URL": os.environ.get("TENANTS_REDIS_URL", "redis://127.0.0.1:6379/13")}}
AI_FIELDS = json.loads(os.environ.get("TENANTS_AI_FIELDS", "{}"))
if PLACEMENT == "shared":
    AI_FIELDS.setdefault("TENANT_RESOLVER", "django_ai_fields.tenants.schemas.schema_tenant")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"null": {"class": "logging.NullHandler"}},
    "root": {"handlers": ["null"]},
    "loggers": {"rq.worker": {"handlers": ["null"], "propagate": False}},
}
