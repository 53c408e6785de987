"""Settings for the test suite.

Defaults: SQLite in memory and fakeredis, so a fresh machine passes. With
``DATABASE_URL`` (PostgreSQL; MariaDB or MySQL with ``mysql://``) and ``REDIS_URL``
set, the same suite runs against real services and real ``rqworker`` processes.
"""

from __future__ import annotations

import json
import os
from urllib.parse import urlsplit, urlunsplit

import django

SECRET_KEY = "tests-only"
DEBUG = False
USE_TZ = True
ROOT_URLCONF = "tests.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django_rq",
    "import_export",
    "django_ai_fields",
    "tests.testapp",
]

# Django's task framework with django-tasks-db (the "tasks" extra; tests/backends):
# its table is in the test database, so a ``db_worker`` process can run the tasks.
try:
    import django_tasks_db.compat  # noqa: F401  (needs django.tasks or the backport)
except (ImportError, ValueError):
    pass
else:
    INSTALLED_APPS.append("django_tasks_db")
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    # SHARED_STATE "cache" across processes (tests/backends): the database cache.
    "shared": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "django_ai_fields_shared_state",
        # Django culls a third of the entries past 300 by default: marks included.
        "OPTIONS": {"MAX_ENTRIES": 100_000},
    },
}

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]


def database_from_url(url: str) -> dict[str, object]:
    """postgres://... (PostgreSQL) or mysql://... / mariadb://... (MariaDB, MySQL:
    needs mysqlclient, the ``mariadb`` extra)."""
    parts = urlsplit(url)
    mysql = parts.scheme in {"mysql", "mariadb"}
    database: dict[str, object] = {
        "ENGINE": "django.db.backends.mysql" if mysql else "django.db.backends.postgresql",
        "NAME": parts.path.lstrip("/") or "test",
        "USER": parts.username or ("root" if mysql else "postgres"),
        "PASSWORD": parts.password or "",
        "HOST": parts.hostname or "127.0.0.1",
        "PORT": str(parts.port or (3306 if mysql else 5432)),
        # Worker subprocesses open the test database by this name.
        # One database per test session, so parallel sessions never collide.
        "TEST": {"NAME": os.environ.get("AI_FIELDS_TEST_DB_NAME", f"test_ai_fields_{os.getpid()}")},
    }
    if mysql:
        database["OPTIONS"] = {"charset": "utf8mb4"}
        database["TEST"]["CHARSET"] = "utf8mb4"  # type: ignore[index]
    return database


# File inputs (tests/declare/test_file_inputs.py): real worker processes read the same files.
MEDIA_ROOT = os.environ.get(
    "AI_FIELDS_TEST_MEDIA_ROOT", f"/tmp/django_ai_fields_media_{os.getpid()}"
)

DATABASE_URL = os.environ.get("DATABASE_URL")
REDIS_URL = os.environ.get("REDIS_URL")

if DATABASE_URL:
    DATABASES = {"default": database_from_url(DATABASE_URL)}
else:
    # A file, not memory: concurrency tests run several connections at once, and
    # real worker processes (with REDIS_URL) open the same database.
    sqlite_path = os.environ.get(
        "AI_FIELDS_TEST_SQLITE", f"/tmp/django_ai_fields_test_{os.getpid()}.sqlite3"
    )
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": sqlite_path,
            "TEST": {"NAME": sqlite_path},
            # IMMEDIATE: concurrent writers wait for the lock instead of failing.
            "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE"},
        }
    }


def extra_database(alias: str) -> dict[str, object]:
    """Another database beside the default one (tests/deployment: a lagging replica, a
    second database for ``using()``), created only for the tests that name it."""
    if DATABASE_URL:
        extra = database_from_url(DATABASE_URL)
        test = dict(extra["TEST"])  # type: ignore[call-overload]
        extra["TEST"] = {**test, "NAME": f"{test['NAME']}_{alias}"}
        return extra
    path = f"{sqlite_path}.{alias}"
    return {**DATABASES["default"], "NAME": path, "TEST": {"NAME": path}}


DATABASES["other"] = extra_database("other")
DATABASES["replica"] = extra_database("replica")
# tests/deployment's routers reach worker subprocesses this way (dotted paths, commas).
DATABASE_ROUTERS = [p for p in os.environ.get("AI_FIELDS_TEST_ROUTERS", "").split(",") if p]

if REDIS_URL:
    # One Redis database per test session (1-15), so parallel sessions never collide;
    # the suite flushes it before every test.
    # pytest-xdist workers (gw0, gw1...) take databases 1, 2...; a plain session one by pid.
    _xdist = os.environ.get("PYTEST_XDIST_WORKER", "").removeprefix("gw")
    # AI_FIELDS_TEST_REDIS_DB_BASE moves the xdist range (two sessions on one Redis).
    _base = int(os.environ.get("AI_FIELDS_TEST_REDIS_DB_BASE", "1"))
    _default_db = _base + int(_xdist) if _xdist.isdigit() else 8 + os.getpid() % 8
    REDIS_TEST_DB = os.environ.get("AI_FIELDS_TEST_REDIS_DB", str(_default_db))
    # The db number in the URL wins over a "DB" key, so it goes into the URL itself.
    RQ_QUEUES = {
        "default": {"URL": urlunsplit(urlsplit(REDIS_URL)._replace(path=f"/{REDIS_TEST_DB}"))}
    }
else:
    import fakeredis

    FAKE_REDIS = fakeredis.FakeRedis()
    RQ_QUEUES = {
        "default": {
            "HOST": "fakeredis",
            "PORT": 0,
            "REDIS_CLIENT_KWARGS": {"connection_pool": FAKE_REDIS.connection_pool},
        }
    }

# RQ's forking worker, stopping at once (django_ai_fields.rq_worker, W025).
RQ = {"WORKER_CLASS": "django_ai_fields.rq_worker.Worker"}

AI_FIELDS: dict[str, object] = {
    "DEFAULT_PROVIDER": "offline",
    "DEFAULT_MODEL": "gpt-4o-mini",
    "RETRY_BACKOFF": 0,
    "SWEEP_INTERVAL": 0,
    # Drains end as soon as the queue is empty (in-process burst workers would
    # otherwise wait out the linger); tests/jobs/test_drain_linger.py turns it on.
    "DRAIN_LINGER": 0,
    # Only tests/deployment's tests use the other databases (and say so).
    "JOB_DATABASES": ["default"],
}
# Worker subprocesses receive the test's AI_FIELDS (fake provider URL...) this way.
AI_FIELDS.update(json.loads(os.environ.get("AI_FIELDS_TEST_OVERRIDES", "{}")))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"null": {"class": "logging.NullHandler"}},
    "loggers": {"rq.worker": {"handlers": ["null"], "propagate": False}},
}

if os.environ.get("AI_FIELDS_WORKER_PROCESS"):
    # A worker subprocess started by the tests works on the test databases.
    _names = json.loads(os.environ.get("AI_FIELDS_TEST_DATABASE_NAMES", "{}"))
    for _alias, _database in DATABASES.items():
        _database["NAME"] = _names.get(_alias, _database["TEST"]["NAME"])  # type: ignore[index]

if django.VERSION >= (6, 1):
    # Django 6.1 deprecates the implicit default mailer (EMAIL_BACKEND); the test
    # runner swaps each configured mailer for locmem.
    MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
