"""Observability: a structured log record, Prometheus metrics and an OpenTelemetry
span for every provider call, and a log record for every job status change.

Metrics need ``prometheus_client`` (the ``prometheus`` extra) and spans need
``opentelemetry-api``; without them those parts do nothing. See
docs/observability.md.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import transaction

from ..models import AIJob, AIUsage, Status
from . import metrics, tracing

if TYPE_CHECKING:
    from ..calling.pipeline import Prepared
    from ..providers import ProviderError

logger = logging.getLogger("django_ai_fields")

# Statuses that log at WARNING; the others at INFO.
WARNING_STATUSES = frozenset({Status.FAILED})


@dataclass
class ObservedCall:
    prepared: Prepared
    span: Any


def call_started(job: AIJob, prepared: Prepared) -> ObservedCall:
    return ObservedCall(prepared, tracing.start_call(job, prepared))


def call_finished(
    observed: ObservedCall, job: AIJob, usage: AIUsage, error: ProviderError | None
) -> None:
    """Log, count and trace one provider call from its AIUsage row."""
    fields = call_fields(job, observed.prepared, usage)
    tracing.end_call(observed.span, fields, error)
    metrics.record_call(fields)
    if error is None:
        message = "AI call %(provider)s/%(model)s for job %(job_id)s: %(duration_ms)s ms"
        logger.info(message, fields, extra=fields)
    else:
        fields["error"] = error.message
        message = "AI call %(provider)s/%(model)s for job %(job_id)s failed: %(error_code)s"
        logger.warning(message, fields, extra=fields)


def call_fields(job: AIJob, prepared: Prepared, usage: AIUsage) -> dict[str, Any]:
    """The structured fields of one call's log record (also the metric labels' source)."""
    return {
        "event": "ai_call",
        "job_id": job.pk,
        "tenant": job.tenant,
        "function": job.function,
        "target": target_of(job),
        "attempt": job.attempts,
        "provider": usage.provider,
        "model": usage.model,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cached_tokens": usage.cached_tokens,
        # A float for log pipelines; AIUsage keeps the exact Decimal.
        "cost_usd": float(usage.cost_usd or 0),
        "duration_ms": usage.duration_ms,
        "success": usage.success,
        "error_code": usage.error_code,
        "streamed": bool(getattr(prepared.function, "stream", False)),
    }


def target_of(job: AIJob) -> str:
    """``app_label.model:pk.field`` for field jobs, "" for other functions."""
    if job.content_type is None:
        return ""
    ct = job.content_type
    return f"{ct.app_label}.{ct.model}:{job.object_id}.{job.field_name}"


def job_status_changed(job: AIJob) -> None:
    """Log (and count finished) a job's new status once its transaction commits."""
    fields = {
        "event": "ai_job",
        "job_id": job.pk,
        "tenant": job.tenant,
        "function": job.function,
        "target": target_of(job),
        "status": job.status,
        "phase": job.phase,
        "attempt": job.attempts,
        "error_code": job.error_code,
        "error": job.error,
    }
    transaction.on_commit(lambda: _announce_status(fields))


def _announce_status(fields: dict[str, Any]) -> None:
    level = logging.WARNING if fields["status"] in WARNING_STATUSES else logging.INFO
    message = "AI job %(job_id)s %(status)s (%(phase)s, attempt %(attempt)s)"
    if fields["error_code"] or fields["error"]:
        message += ": %(error_code)s %(error)s"
    logger.log(level, message, fields, extra=fields)
    metrics.record_job_status(fields)


__all__ = ["call_finished", "call_started", "job_status_changed"]
