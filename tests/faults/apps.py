"""Worker-side bookkeeping for the fault suite: a log of every write-back."""

from __future__ import annotations

import json
import os
from typing import Any

from django.apps import AppConfig


class FaultsConfig(AppConfig):
    name = "tests.faults"
    label = "faults"

    def ready(self) -> None:
        from django_ai_fields import signals

        signals.field_updated.connect(log_write, dispatch_uid="faults-write-log")


def log_write(
    sender: Any, instance_pk: str, field_name: str, value: Any, job: Any, **kw: Any
) -> None:
    """Append one line per committed write (O_APPEND: lines of all processes interleave whole)."""
    path = os.environ.get("FAULTS_WRITE_LOG")
    if not path:
        return
    line = json.dumps({"job": job.pk, "row": str(instance_pk), "field": field_name, "value": value})
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)
