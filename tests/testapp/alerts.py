"""A quota_threshold_reached receiver for the tests: appends one line per signal to
the file named by AI_FIELDS_TEST_ALERT_LOG, so alerts sent in real worker
processes are counted too."""

from __future__ import annotations

import os
from typing import Any

from django.dispatch import receiver

from django_ai_fields.signals import quota_threshold_reached


@receiver(quota_threshold_reached)
def log_alert(sender: Any, tenant: str, quota: Any, fraction: float, **kwargs: Any) -> None:
    path = os.environ.get("AI_FIELDS_TEST_ALERT_LOG")
    if not path:
        return
    line = f"{tenant} {quota.kind} {quota.period} {fraction}\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
