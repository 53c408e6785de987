"""The benchmark project's Celery app, set up the standard Django way
(``celery -A benchmarks.celeryproj worker``)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")

app = Celery("benchmarks")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# The app the benchmark process sends with, on the broker under measure (backends.py).
sender = None
