"""Settings of the fault suite's processes (controller and workers): its own Redis,
its own database, the scenario's AI_FIELDS, and the write log app."""

from __future__ import annotations

import json
import os

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS, database_from_url

INSTALLED_APPS = [*INSTALLED_APPS, "tests.faults"]

if os.environ.get("FAULTS_DATABASE_URL"):
    DATABASES = {"default": database_from_url(os.environ["FAULTS_DATABASE_URL"])}
    DATABASES["default"]["NAME"] = DATABASES["default"]["TEST"]["NAME"] = os.environ[
        "FAULTS_DATABASE_URL"
    ].rsplit("/", 1)[1]
else:
    _path = os.environ.get("FAULTS_SQLITE", "/tmp/django_ai_fields_faults.sqlite3")
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": _path,
            "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE"},
        }
    }

RQ_QUEUES = {"default": {"URL": os.environ.get("FAULTS_REDIS_URL", "redis://127.0.0.1:6379/15")}}
AI_FIELDS = json.loads(os.environ.get("FAULTS_AI_FIELDS", "{}"))
# The Celery scenarios: the scenario's own redis-server is the broker too.
CELERY_BROKER_URL = RQ_QUEUES["default"]["URL"]
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"null": {"class": "logging.NullHandler"}},
    "root": {"handlers": ["null"]},
    "loggers": {"rq.worker": {"handlers": ["null"], "propagate": False}},
}

if os.environ.get("FAULTS_VERBOSE"):
    # Workers log what they do to their worker-N.log (kept in the scenario's workdir).
    LOGGING = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"timed": {"format": "%(asctime)s %(name)s %(message)s"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "timed"}},
        "root": {"handlers": ["stderr"], "level": "INFO"},
    }
