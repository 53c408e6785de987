"""Database routers of the deployment tests."""

from __future__ import annotations

from typing import Any


class LaggingReplicaRouter:
    """The common primary/replica router: every read goes to "replica", every write
    to "default". In the tests "replica" is a copy that never sees a commit: the
    worst case of replication lag."""

    def db_for_read(self, model: type, **hints: Any) -> str:
        return "replica"

    def db_for_write(self, model: type, **hints: Any) -> str:
        return "default"

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        return True

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        return True


class SplitAppsRouter:
    """A router that keeps the app's models in "other" while the project's rows are
    written to "default": the jobs (written beside their rows) land where the app's
    own reads never look. The system check warns about it."""

    def db_for_read(self, model: type, **hints: Any) -> str | None:
        return "other" if model._meta.app_label == "django_ai_fields" else None

    def db_for_write(self, model: type, **hints: Any) -> str | None:
        return "other" if model._meta.app_label == "django_ai_fields" else None
