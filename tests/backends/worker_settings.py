"""Settings of the workers tests/backends starts: the test database and AI_FIELDS
(tests/settings.py, from the environment), the Celery broker and queue, and for the
``no_redis`` run no django-rq and no RQ_QUEUES at all."""

from __future__ import annotations

import os

from tests.settings import *  # noqa: F403
from tests.settings import AI_FIELDS, INSTALLED_APPS

CELERY_BROKER_URL = os.environ.get("AI_FIELDS_TEST_CELERY_BROKER", "memory://")
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("AI_FIELDS_TEST_CELERY_QUEUE", "celery")
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# The test process names its own sending app; a worker uses the project's.
AI_FIELDS["CELERY_APP"] = None

if os.environ.get("AI_FIELDS_TEST_NO_REDIS"):
    INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "django_rq"]
    del RQ_QUEUES  # noqa: F821
