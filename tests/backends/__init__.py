"""The task backends against real workers as users run them: a Celery worker
(``celery -A proj worker``, prefork) on Redis and on RabbitMQ, and django-tasks-db's
``manage.py db_worker`` (no Redis at all)."""
