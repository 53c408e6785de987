"""Prometheus metrics, when ``prometheus_client`` is installed and METRICS is on.

Counters and the latency histogram are updated where the provider calls
happen: in the workers. With RQ's forking worker every job runs in a child
process, so use prometheus_client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR)
and scrape :func:`metrics_view`; see docs/observability.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

from django.http import HttpRequest, HttpResponse

from ..codes import FINISHED_STATUSES
from ..conf import get_setting

try:
    import prometheus_client
    from prometheus_client.core import GaugeMetricFamily
    from prometheus_client.registry import Collector
except ImportError:  # the optional "prometheus" extra is not installed
    prometheus_client = None  # type: ignore[assignment]
    Collector = object  # type: ignore[assignment,misc]

PREFIX = "django_ai_fields"
# Seconds; LLM calls take from a fraction of a second to minutes.
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)
CALL_LABELS = ("provider", "model")


def enabled() -> bool:
    return prometheus_client is not None and bool(get_setting("METRICS"))


@cache
def instruments() -> dict[str, Any]:
    """The metric objects, created (and registered in the default registry) once."""
    pc = prometheus_client
    assert pc is not None
    return {
        "requests": pc.Counter(
            f"{PREFIX}_provider_requests", "Provider calls, failed ones included.", CALL_LABELS
        ),
        "errors": pc.Counter(
            f"{PREFIX}_provider_errors",
            "Failed provider calls by error code.",
            (*CALL_LABELS, "error_code"),
        ),
        "latency": pc.Histogram(
            f"{PREFIX}_provider_request_duration_seconds",
            "Duration of provider calls.",
            CALL_LABELS,
            buckets=LATENCY_BUCKETS,
        ),
        "tokens": pc.Counter(
            f"{PREFIX}_tokens", "Tokens of provider calls.", (*CALL_LABELS, "direction")
        ),
        "cost": pc.Counter(f"{PREFIX}_cost_usd", "Cost of provider calls in USD.", CALL_LABELS),
        "jobs": pc.Counter(
            f"{PREFIX}_jobs_finished",
            "Jobs that reached a final status, by status and error code.",
            ("status", "error_code"),
        ),
        "stuck": pc.Counter(
            f"{PREFIX}_jobs_stuck",
            "Jobs found pending or queued past STUCK_AFTER, each counted once, by reason.",
            ("reason",),
        ),
        "transitions": pc.Counter(
            f"{PREFIX}_job_transitions",
            "Job status changes, by the status entered (pending, queued, running...).",
            ("status",),
        ),
    }


def record_call(fields: dict[str, Any]) -> None:
    if not enabled():
        return
    metric = instruments()
    labels = (fields["provider"], fields["model"])
    metric["requests"].labels(*labels).inc()
    if not fields["success"]:
        metric["errors"].labels(*labels, fields["error_code"]).inc()
    metric["latency"].labels(*labels).observe(fields["duration_ms"] / 1000)
    metric["tokens"].labels(*labels, "input").inc(fields["input_tokens"])
    metric["tokens"].labels(*labels, "output").inc(fields["output_tokens"])
    metric["cost"].labels(*labels).inc(fields["cost_usd"])


def record_job_status(status: str, error_code: str = "", count: int = 1) -> None:
    """Count ``count`` jobs entering ``status`` (dispatch.transitions calls it)."""
    if not enabled():
        return
    metric = instruments()
    metric["transitions"].labels(status).inc(count)
    if status in FINISHED_STATUSES:
        metric["jobs"].labels(status, error_code).inc(count)


def record_stuck(reason: str) -> None:
    """Count one job found stuck (jobs/stuck.py), with its reason's code."""
    if enabled():
        instruments()["stuck"].labels(reason).inc()


# Gauge state label -> the queue health's key (RQ has all three; Celery and
# django.tasks report the wake-ups waiting, where they can tell).
STATES = (("queued", "waiting"), ("scheduled", "scheduled"), ("started", "started"))
# Reads the queue's health when scraped (observability.health.queue_health, given by
# the app config: this module sits below the one that knows the queue's state).
_queue_health: list[Callable[[], dict[str, Any]]] = []


class QueueCollector(Collector):
    """Read from the task backend when scraped: tasks on the AI queue (waiting,
    scheduled for retries and delays, started), the workers it sees, and how long
    the oldest queued job has waited."""

    def describe(self) -> Iterator[Any]:
        """The families without samples: the registry reads these at registration
        (app start-up), when the queue and the database must not be queried."""
        yield from self._families()

    def collect(self) -> Iterator[Any]:
        gauge, workers, oldest = self._families()
        health: dict[str, Any] = _queue_health[0]() if _queue_health else {"ok": False}
        if health["ok"]:  # the queue unreachable: no samples rather than a failed scrape
            for state, key in STATES:
                if health.get(key) is not None:
                    gauge.add_metric([health["name"], state], health[key])
            if health.get("workers") is not None:
                workers.add_metric([health["backend"]], len(health["workers"]))
        waiting = health.get("oldest_waiting_job")
        oldest.add_metric([], waiting["seconds"] if waiting else 0.0)
        yield gauge
        yield workers
        yield oldest

    @staticmethod
    def _families() -> tuple[Any, Any, Any]:
        return (
            GaugeMetricFamily(
                f"{PREFIX}_queue_depth",
                "Jobs on the AI queue, by state.",
                labels=["queue", "state"],
            ),
            GaugeMetricFamily(
                f"{PREFIX}_workers", "Workers the task backend sees.", labels=["backend"]
            ),
            GaugeMetricFamily(
                f"{PREFIX}_oldest_waiting_job_seconds", "Seconds the oldest queued job has waited."
            ),
        )


def install(queue_health: Callable[[], dict[str, Any]]) -> bool:
    """Register the queue collector in the default registry (once; at start-up)."""
    _queue_health[:] = [queue_health]
    return _register_collector()


@cache
def _register_collector() -> bool:
    if not enabled() or multiprocess_dir():
        return False
    prometheus_client.REGISTRY.register(QueueCollector())
    return True


def multiprocess_dir() -> str:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


def registry() -> Any:
    """What to expose: every process's samples in multiprocess mode, else this
    process's default registry; the queue depth either way."""
    if multiprocess_dir():
        from prometheus_client import multiprocess

        merged = prometheus_client.CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)
        merged.register(QueueCollector())
        return merged
    _register_collector()
    return prometheus_client.REGISTRY


def metrics_view(request: HttpRequest) -> HttpResponse:
    """The Prometheus exposition. Not in django_ai_fields.urls: mount it where your
    scraper can reach it, behind whatever protection you use."""
    if not enabled():
        return HttpResponse("Metrics are off or prometheus_client is missing.", status=404)
    body = prometheus_client.generate_latest(registry())
    return HttpResponse(body, content_type=prometheus_client.CONTENT_TYPE_LATEST)


__all__ = [
    "metrics_view",
]
