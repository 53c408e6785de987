"""proj/celery.py as Celery's Django guide writes it; the workers of tests/backends
run ``celery -A tests.backends.celeryproj worker``."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.backends.worker_settings")

app = Celery("celeryproj")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
