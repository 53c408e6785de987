"""One provider call observed: a structured log record, Prometheus metrics and an
OpenTelemetry span (tracing.py), written from the call's AIUsage row."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ..models import AIJob, AIUsage
from ..providers import CompletionRequest, ProviderError
from . import metrics, tracing

logger = logging.getLogger("django_ai_fields")


@dataclass
class ObservedCall:
    streamed: bool
    span: Any


def call_started(
    job: AIJob, request: CompletionRequest, provider: str, *, streamed: bool
) -> ObservedCall:
    return ObservedCall(streamed, tracing.start_call(job, request, provider))


def call_finished(
    observed: ObservedCall, job: AIJob, usage: AIUsage, error: ProviderError | None
) -> None:
    """Log, count and trace one provider call from its AIUsage row."""
    fields = call_fields(job, usage, streamed=observed.streamed)
    tracing.end_call(observed.span, fields, error)
    metrics.record_call(fields)
    if error is None:
        message = "AI call %(provider)s/%(model)s for job %(job_id)s: %(duration_ms)s ms"
        logger.info(message, fields, extra=fields)
    else:
        fields["error"] = error.message
        message = "AI call %(provider)s/%(model)s for job %(job_id)s failed: %(error_code)s"
        logger.warning(message, fields, extra=fields)


def call_fields(job: AIJob, usage: AIUsage, *, streamed: bool) -> dict[str, Any]:
    """The structured fields of one call's log record (also the metric labels' source)."""
    return {
        "event": "ai_call",
        "job_id": job.pk,
        "tenant": job.tenant,
        "function": job.function,
        "target": job.target_label,
        "attempt": job.attempts,
        "provider": usage.provider,
        "model": usage.model,
        # What the provider says answered (may differ from the model asked for).
        "reported_model": usage.reported_model or usage.model,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cached_tokens": usage.cached_tokens,
        # A float for log pipelines; AIUsage keeps the exact Decimal.
        "cost_usd": float(usage.cost_usd or 0),
        "duration_ms": usage.duration_ms,
        "success": usage.success,
        "error_code": usage.error_code,
        "streamed": streamed,
    }
