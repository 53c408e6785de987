"""The shared vocabulary of a job: its statuses, phases, error codes and the name of
the built-in AI function.

The bottom of the package: every layer (the provider adapters included) imports
these from here, so none needs the models module for a code. ``models.py``
re-exports them, so ``from django_ai_fields.models import Status`` keeps working.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class Status(models.TextChoices):
    PENDING = "pending", _("Pending")
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    # The answer waits for a person's accept or reject (a field with review=True).
    IN_REVIEW = "in_review", _("Awaiting review")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")
    SUPERSEDED = "superseded", _("Superseded")


OPEN_STATUSES = (Status.PENDING, Status.QUEUED)
UNFINISHED_STATUSES = (Status.PENDING, Status.QUEUED, Status.RUNNING)
FINISHED_STATUSES = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED, Status.SUPERSEDED)
# ``in_review`` is none of these: the run is over, the job is not (a person ends it).


class Phase(models.TextChoices):
    INIT = "INIT", "INIT"
    PREP = "PREP", "PREP"
    AI_CALL = "AI_CALL", "AI_CALL"
    PARSE = "PARSE", "PARSE"
    SAVE = "SAVE", "SAVE"
    DONE = "DONE", "DONE"
    # Queued in a provider's batch (``ai_regenerate --batch``); see jobs/batches.py.
    BATCH = "BATCH", "BATCH"


class ErrorCode(models.TextChoices):
    QUOTA_EXCEEDED = "quota_exceeded", _("Quota exceeded")
    BUDGET_EXCEEDED = "budget_exceeded", _("Budget exceeded")
    RATE_LIMITED = "rate_limited", _("Rate limited")
    PROVIDER_UNAVAILABLE = "provider_unavailable", _("Provider unavailable")
    TIMEOUT = "timeout", _("Timeout")
    AUTH = "auth", _("Authentication failed")
    BAD_REQUEST = "bad_request", _("Bad request")
    INVALID_OUTPUT = "invalid_output", _("Invalid output")
    CIRCUIT_OPEN = "circuit_open", _("Circuit open")
    INTERNAL = "internal", _("Internal error")


# ``AIJob.function`` of a field's generation (generation.py); any other value names an
# AIFunction a project registered (functions.py).
FIELD_FUNCTION = "field"

# What the prompt renderer appends to a value cut at max_input_chars (the PII
# redactor masks a value's cut remainder before it).
TRUNCATION_MARKER = " …[truncated]"


__all__ = [
    "FINISHED_STATUSES",
    "OPEN_STATUSES",
    "UNFINISHED_STATUSES",
    "ErrorCode",
    "Phase",
    "Status",
]
