"""The AIJob changelist's *stuck* filter (no silent waits, jobs/stuck.py): jobs
pending or queued longer than ``AI_FIELDS["STUCK_AFTER"]``, running past
``JOB_TIMEOUT``, or pending past ``PENDING_GRACE``; the same jobs ``ai_status`` names."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import models
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from ..models import AIJob
from ..observability.health import stuck_filter


class StuckFilter(admin.SimpleListFilter):
    title = _("stuck")
    parameter_name = "stuck"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("yes", _("Stuck (waiting too long)"))]

    def queryset(
        self, request: HttpRequest, queryset: models.QuerySet[AIJob]
    ) -> models.QuerySet[AIJob]:
        if self.value() == "yes":
            return queryset.filter(stuck_filter())
        return queryset


__all__ = ["StuckFilter"]
