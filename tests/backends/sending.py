"""The Celery app the test process sends with (``AI_FIELDS["CELERY_APP"]``), one per
broker under test; the workers use the project's own (celeryproj)."""

from __future__ import annotations

from typing import Any

app: Any = None
