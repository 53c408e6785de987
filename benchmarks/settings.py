"""Settings of the benchmark runs (``benchmarks/run.py`` selects them).

Defaults: a SQLite file of its own and fakeredis. With ``DATABASE_URL``
(PostgreSQL) and ``REDIS_URL`` set, the same figures are measured on real
services, and the backfill is drained by real ``rqworker`` processes.
"""

from __future__ import annotations

import json
import os
from urllib.parse import urlsplit

SECRET_KEY = "benchmarks-only"
DEBUG = False
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django_rq",
    "django_ai_fields",
    "tests.testapp",
]

# One database and one queue per run, so a run never touches anything else.
RUN_ID = os.environ.setdefault("AI_FIELDS_BENCH_RUN", str(os.getpid()))
DATABASE_URL = os.environ.get("DATABASE_URL")
REDIS_URL = os.environ.get("REDIS_URL")

if DATABASE_URL:
    url = urlsplit(DATABASE_URL)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": url.path.lstrip("/") or "postgres",
            "USER": url.username or "postgres",
            "PASSWORD": url.password or "",
            "HOST": url.hostname or "127.0.0.1",
            "PORT": str(url.port or 5432),
            "TEST": {"NAME": f"ai_fields_bench_{RUN_ID}"},
        }
    }
else:
    sqlite_path = f"/tmp/django_ai_fields_bench_{RUN_ID}.sqlite3"
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": sqlite_path,
            "TEST": {"NAME": sqlite_path},
            # IMMEDIATE: the backfill's concurrent workers wait for the lock instead of failing.
            "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE"},
        }
    }

QUEUE_NAME = f"ai-fields-bench-{RUN_ID}"
if REDIS_URL:
    RQ_QUEUES = {QUEUE_NAME: {"URL": REDIS_URL}}
else:
    import fakeredis

    FAKE_REDIS = fakeredis.FakeRedis()
    RQ_QUEUES = {
        QUEUE_NAME: {
            "HOST": "fakeredis",
            "PORT": 0,
            "REDIS_CLIENT_KWARGS": {"connection_pool": FAKE_REDIS.connection_pool},
        }
    }

# What users run (docs/deployment.md): RQ's forking worker, stopping at once.
RQ = {"WORKER_CLASS": "django_ai_fields.rq_worker.Worker"}

# The library's defaults, except the provider (no network unless a scenario
# points PROVIDERS at the fake provider server) and the queue of this run.
AI_FIELDS: dict[str, object] = {"DEFAULT_PROVIDER": "offline", "QUEUE": QUEUE_NAME}
# Worker processes of the backfill receive the run's AI_FIELDS this way.
AI_FIELDS.update(json.loads(os.environ.get("AI_FIELDS_BENCH_OVERRIDES", "{}")))

# benchmarks/backends.py: Celery (its workers read the broker and queue from the
# environment), django-tasks-db, and the database cache as the shared state.
CELERY_BROKER_URL = os.environ.get("AI_FIELDS_BENCH_CELERY_BROKER", "memory://")
CELERY_TASK_DEFAULT_QUEUE = QUEUE_NAME
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
try:
    import django_tasks_db.compat  # noqa: F401
except (ImportError, ValueError):
    pass
else:
    INSTALLED_APPS.append("django_tasks_db")
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "shared": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "ai_fields_bench_shared_state",
        "OPTIONS": {"MAX_ENTRIES": 100_000},
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"null": {"class": "logging.NullHandler"}},
    "loggers": {"rq.worker": {"handlers": ["null"], "propagate": False}},
}

# Seconds a connection is reused (Django's default: 0, one connection per request or job).
CONN_MAX_AGE_SETTING = os.environ.get("AI_FIELDS_BENCH_CONN_MAX_AGE")
if CONN_MAX_AGE_SETTING:
    DATABASES["default"]["CONN_MAX_AGE"] = (
        None if CONN_MAX_AGE_SETTING == "none" else int(CONN_MAX_AGE_SETTING)
    )

if os.environ.get("AI_FIELDS_BENCH_WORKER"):
    # A worker process works on the run's database, created by run.py.
    DATABASES["default"]["NAME"] = DATABASES["default"]["TEST"]["NAME"]
