"""An OpenTelemetry span per provider call, when ``opentelemetry-api`` is installed.

Attribute names follow the OpenTelemetry GenAI semantic conventions where one
exists (``gen_ai.*``, ``error.type``); the rest are ``ai_fields.*``. Without an
SDK configured, the API's tracer is a no-op.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..models import AIJob

try:
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind, StatusCode
except ImportError:  # the optional dependency is not installed
    trace = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from ..providers import CompletionRequest, ProviderError

TRACER = "django_ai_fields"


def start_call(job: AIJob, request: CompletionRequest, provider: str) -> Any:
    """Start (not activate) the call's span; None without OpenTelemetry."""
    if trace is None:
        return None
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": provider,
        "gen_ai.request.model": request.model,
        "gen_ai.request.max_tokens": request.max_tokens,
        "ai_fields.job_id": job.pk,
        "ai_fields.tenant": job.tenant,
        "ai_fields.function": job.function,
        "ai_fields.attempt": job.attempts,
    }
    if request.temperature is not None:
        attributes["gen_ai.request.temperature"] = request.temperature
    # Started, not made current: a call that escapes with an unexpected exception
    # must not leave its span active on the worker's context.
    return trace.get_tracer(TRACER).start_span(
        f"chat {request.model}", kind=SpanKind.CLIENT, attributes=attributes
    )


def end_call(span: Any, fields: dict[str, Any], error: ProviderError | None) -> None:
    if span is None:
        return
    span.set_attributes(
        {
            "gen_ai.response.model": fields["reported_model"],
            "gen_ai.usage.input_tokens": fields["input_tokens"],
            "gen_ai.usage.output_tokens": fields["output_tokens"],
            "ai_fields.cached_tokens": fields["cached_tokens"],
            "ai_fields.cost_usd": fields["cost_usd"],
            "ai_fields.duration_ms": fields["duration_ms"],
            "ai_fields.streamed": fields["streamed"],
        }
    )
    if error is not None:
        span.set_attribute("error.type", error.code)
        span.set_attribute("ai_fields.error_code", error.code)
        span.set_status(StatusCode.ERROR, error.message)
    span.end()
