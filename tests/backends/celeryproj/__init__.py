"""A project's Celery set-up, the standard Django way (proj/__init__.py)."""

from .celery import app as celery_app

__all__ = ["celery_app"]
