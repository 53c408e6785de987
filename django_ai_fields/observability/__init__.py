"""Observability: what the app tells operators about its calls and jobs.

``calls`` logs, counts and traces every provider call; ``metrics`` holds the
Prometheus instruments (job status changes are counted by dispatch.transitions,
which also logs them); ``tracing`` the OpenTelemetry spans; ``logs`` a JSON log
formatter; ``health`` the queue, worker and provider checks behind ``ai_status``
and the health API; ``analytics`` usage and cost by tenant, model and day.

Metrics need ``prometheus_client`` (the ``prometheus`` extra) and spans need
``opentelemetry-api``; without them those parts do nothing. See
docs/observability.md.
"""
