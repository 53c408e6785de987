"""Issue #7 item 4: structured logs, Prometheus metrics and OpenTelemetry spans.

Logs, metrics and spans are observed in the process that runs the job, so these
tests run ``run_job`` here (in real-services mode too), except the multiprocess
metrics test, which runs the job in another process on purpose.
"""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import RequestFactory
from django.utils.module_loading import import_string
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from prometheus_client import REGISTRY, CollectorRegistry, multiprocess

from django_ai_fields.api import regenerate
from django_ai_fields.jobs.tasks import run_job
from django_ai_fields.models import AIJob, AIUsage
from django_ai_fields.observability.logs import JsonFormatter
from django_ai_fields.observability.metrics import metrics_view
from django_ai_fields.queues import get_queue
from tests.conftest import ROOT, Worker
from tests.fake_provider import Usage
from tests.testapp.models import Lead

pytestmark = pytest.mark.django_db(transaction=True)

CALL_FIELDS = (
    "job_id",
    "tenant",
    "provider",
    "model",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "duration_ms",
    "success",
    "error_code",
)
LABELS = {"provider": "openai", "model": "gpt-4o-mini"}


# --------------------------------------------------------------------------- helpers


def summary_job(**values: Any) -> AIJob:
    (lead,) = Lead.objects.bulk_create([Lead(name="Ada", company="Acme", **values)])
    return regenerate(lead, "summary")


def call_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", "") == "ai_call"]


def job_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", "") == "ai_job"]


def sample(name: str, registry: Any = REGISTRY, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


class Samples:
    """Metric values before and after: ``delta(name, **labels)``."""

    def __init__(self, *queries: tuple[str, dict[str, str]]):
        self.queries = queries
        self.before = [sample(name, **labels) for name, labels in queries]

    def delta(self, name: str, **labels: str) -> float:
        index = self.queries.index((name, labels))
        return sample(name, **labels) - self.before[index]


CALL_SAMPLES = (
    ("django_ai_fields_provider_requests_total", LABELS),
    ("django_ai_fields_provider_errors_total", {**LABELS, "error_code": "auth"}),
    ("django_ai_fields_provider_request_duration_seconds_count", LABELS),
    ("django_ai_fields_provider_request_duration_seconds_sum", LABELS),
    ("django_ai_fields_tokens_total", {**LABELS, "direction": "input"}),
    ("django_ai_fields_tokens_total", {**LABELS, "direction": "output"}),
    ("django_ai_fields_cost_usd_total", LABELS),
    ("django_ai_fields_jobs_finished_total", {"status": "succeeded", "error_code": ""}),
    ("django_ai_fields_jobs_finished_total", {"status": "failed", "error_code": "auth"}),
)

_exporter = InMemorySpanExporter()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Finished spans of this test: an in-memory exporter on the SDK tracer provider
    (installed once per process; the global provider can be set only once)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    if not getattr(provider, "_ai_fields_test_exporter", False):
        provider.add_span_processor(SimpleSpanProcessor(_exporter))
        provider._ai_fields_test_exporter = True  # type: ignore[attr-defined]
    _exporter.clear()
    yield _exporter
    _exporter.clear()


# --------------------------------------------------------------------------- logs


def test_every_call_logs_one_structured_record(fake_provider, caplog):
    caplog.set_level(logging.INFO, logger="django_ai_fields")
    fake_provider.usage = Usage(input_tokens=1200, output_tokens=300)
    job = summary_job()
    run_job(job.pk)

    (record,) = call_records(caplog)
    usage = AIUsage.objects.get(job=job)
    assert record.name == "django_ai_fields" and record.levelno == logging.INFO
    assert {name: getattr(record, name) for name in CALL_FIELDS} == {
        "job_id": job.pk,
        "tenant": "",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "input_tokens": 1200,
        "output_tokens": 300,
        "cost_usd": float(usage.cost_usd),
        "duration_ms": usage.duration_ms,
        "success": True,
        "error_code": "",
    }
    assert usage.cost_usd > 0
    assert record.target == f"testapp.lead:{job.object_id}.summary"
    assert f"job {job.pk}" in record.getMessage()
    statuses = [(r.status, r.levelno) for r in job_records(caplog)]
    assert statuses == [
        ("pending", logging.INFO),
        ("running", logging.INFO),
        ("succeeded", logging.INFO),
    ]


def test_a_failed_call_and_job_log_warnings_with_the_error_code(fake_provider, caplog):
    caplog.set_level(logging.INFO, logger="django_ai_fields")
    fake_provider.enqueue_fault(status=401)
    job = summary_job()
    run_job(job.pk)

    (record,) = call_records(caplog)
    assert record.levelno == logging.WARNING
    assert (record.success, record.error_code, record.cost_usd) == (False, "auth", 0.0)
    assert "HTTP 401" in record.error
    failed = job_records(caplog)[-1]
    assert (failed.status, failed.error_code, failed.levelno) == ("failed", "auth", logging.WARNING)


def test_a_retry_logs_the_requeue(fake_provider, caplog):
    caplog.set_level(logging.INFO, logger="django_ai_fields")
    fake_provider.enqueue_fault(status=503)
    job = summary_job()
    run_job(job.pk)
    (call,) = call_records(caplog)
    assert (call.error_code, call.attempt) == ("provider_unavailable", 1)
    queued = job_records(caplog)[-1]
    assert (queued.status, queued.error_code, queued.levelno) == (
        "queued",
        "provider_unavailable",
        logging.INFO,
    )


def test_json_formatter_renders_the_extra_fields(fake_provider, caplog):
    caplog.set_level(logging.INFO, logger="django_ai_fields")
    job = summary_job()
    run_job(job.pk)
    (record,) = call_records(caplog)
    line = json.loads(JsonFormatter().format(record))
    assert line["logger"] == "django_ai_fields" and line["level"] == "INFO"
    assert line["message"] == record.getMessage()
    assert {name: line[name] for name in CALL_FIELDS} == {
        name: getattr(record, name) for name in CALL_FIELDS
    }
    assert "args" not in line and "msg" not in line


def docs_sample(page: str, test_name: str) -> str:
    """The code of the block marked ``tested-by: tests/<this file>::<test_name>`` in a page."""
    marker = f"<!-- tested-by: tests/observability/{Path(__file__).name}::{test_name} -->"
    text = (ROOT / "docs" / page).read_text(encoding="utf-8")
    match = re.search(re.escape(marker) + r"\n```python\n(.*?)\n```", text, re.DOTALL)
    assert match, f"no sample marked {marker} in docs/{page}"
    return match.group(1)


def test_json_logging_config_from_the_docs(fake_provider):
    """The LOGGING sample of docs/observability.md: its formatter, handler and level,
    built as dictConfig would, on a stream this test reads."""
    namespace: dict[str, Any] = {}
    exec(docs_sample("observability.md", "test_json_logging_config_from_the_docs"), namespace)
    config = namespace["LOGGING"]
    logger_config = config["loggers"]["django_ai_fields"]
    (handler_name,) = logger_config["handlers"]
    handler_config = config["handlers"][handler_name]
    formatter_config = config["formatters"][handler_config["formatter"]]
    stream = io.StringIO()
    handler = import_string(handler_config["class"])(stream)
    handler.setFormatter(import_string(formatter_config["()"])())
    logger = logging.getLogger("django_ai_fields")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logger_config["level"])
    try:
        job = summary_job()
        run_job(job.pk)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    (call,) = [line for line in lines if line.get("event") == "ai_call"]
    assert (call["job_id"], call["provider"], call["success"]) == (job.pk, "openai", True)
    assert call["level"] == "INFO" and call["logger"] == "django_ai_fields"
    assert [line["status"] for line in lines if line.get("event") == "ai_job"] == [
        "pending",
        "running",
        "succeeded",
    ]


# --------------------------------------------------------------------------- metrics


def test_calls_update_the_prometheus_metrics(fake_provider):
    fake_provider.usage = Usage(input_tokens=1000, output_tokens=500)
    samples = Samples(*CALL_SAMPLES)
    ok = summary_job()
    run_job(ok.pk)
    fake_provider.enqueue_fault(status=401)
    bad = summary_job()
    run_job(bad.pk)

    assert samples.delta("django_ai_fields_provider_requests_total", **LABELS) == 2
    errors = {**LABELS, "error_code": "auth"}
    assert samples.delta("django_ai_fields_provider_errors_total", **errors) == 1
    latency = "django_ai_fields_provider_request_duration_seconds"
    assert samples.delta(f"{latency}_count", **LABELS) == 2
    durations = AIUsage.objects.values_list("duration_ms", flat=True)
    assert samples.delta(f"{latency}_sum", **LABELS) == pytest.approx(
        sum(durations) / 1000, abs=1e-6
    )
    tokens = "django_ai_fields_tokens_total"
    assert samples.delta(tokens, **LABELS, direction="input") == 1000
    assert samples.delta(tokens, **LABELS, direction="output") == 500
    cost = float(AIUsage.objects.get(job=ok).cost_usd)
    assert cost > 0
    assert samples.delta("django_ai_fields_cost_usd_total", **LABELS) == pytest.approx(cost)
    finished = "django_ai_fields_jobs_finished_total"
    assert samples.delta(finished, status="succeeded", error_code="") == 1
    assert samples.delta(finished, status="failed", error_code="auth") == 1


def test_metrics_setting_off_records_nothing(fake_provider, settings):
    settings.AI_FIELDS = {**settings.AI_FIELDS, "METRICS": False}
    samples = Samples(*CALL_SAMPLES)
    run_job(summary_job().pk)
    assert AIUsage.objects.count() == 1
    assert samples.delta("django_ai_fields_provider_requests_total", **LABELS) == 0
    response = metrics_view(RequestFactory().get("/metrics"))
    assert response.status_code == 404


def test_queue_depth_is_read_from_redis_on_scrape(fake_provider):
    for name in ("Ada", "Grace", "Edsger"):
        Lead.objects.create(name=name, company="Acme", notes="Wants 20 seats")  # 3 jobs each
    get_queue().enqueue("benchmarks.workers.noop")  # another RQ job on the AI queue
    queued = len(get_queue())
    assert queued == 2  # one drain for the nine AI jobs, and the other job
    depth = {"queue": "default", "state": "queued"}
    assert sample("django_ai_fields_queue_depth", **depth) == queued

    response = metrics_view(RequestFactory().get("/metrics"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    body = response.content.decode()
    assert 'django_ai_fields_queue_depth{queue="default",state="queued"} 2.0' in body
    assert "django_ai_fields_provider_requests_total" in body


def test_multiprocess_metrics_from_another_process(fake_provider, worker, tmp_path, monkeypatch):
    """The documented setup for forking workers: PROMETHEUS_MULTIPROC_DIR shared by the
    worker processes and the process serving metrics_view."""
    fake_provider.usage = Usage(input_tokens=70, output_tokens=30)
    job = summary_job()
    env = {**Worker().env(), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    if worker.real:  # a real rqworker: each job runs in a forked work horse
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
        worker.drain()
    else:  # another process running the engine on the same database
        code = (
            "import django; django.setup(); from django_ai_fields.jobs.tasks import run_job; "
            f"print(run_job({job.pk}))"
        )
        subprocess.run(
            [sys.executable, "-c", code], env=env, cwd=ROOT, check=True, capture_output=True
        )
    job.refresh_from_db()
    assert job.status == "succeeded"

    merged = CollectorRegistry()
    multiprocess.MultiProcessCollector(merged, path=str(tmp_path))
    assert sample("django_ai_fields_provider_requests_total", merged, **LABELS) == 1
    tokens = {**LABELS, "direction": "input"}
    assert sample("django_ai_fields_tokens_total", merged, **tokens) == 70

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    body = metrics_view(RequestFactory().get("/metrics")).content.decode()
    line = 'django_ai_fields_provider_requests_total{model="gpt-4o-mini",provider="openai"} 1.0'
    assert line in body
    assert "django_ai_fields_queue_depth" in body


# --------------------------------------------------------------------------- tracing


def test_each_call_is_one_span_with_its_attributes(fake_provider, spans):
    fake_provider.usage = Usage(input_tokens=80, output_tokens=20)
    job = summary_job()
    run_job(job.pk)

    # This job's spans only: a call another test left in flight may end meanwhile.
    (span,) = [s for s in spans.get_finished_spans() if s.attributes["ai_fields.job_id"] == job.pk]
    usage = AIUsage.objects.get(job=job)
    assert span.name == "chat gpt-4o-mini"
    attributes = dict(span.attributes)
    assert attributes["gen_ai.system"] == "openai"
    assert attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert attributes["gen_ai.usage.input_tokens"] == 80
    assert attributes["gen_ai.usage.output_tokens"] == 20
    assert attributes["ai_fields.cost_usd"] == pytest.approx(float(usage.cost_usd))
    assert attributes["ai_fields.job_id"] == job.pk
    assert "error.type" not in attributes
    assert span.status.status_code == StatusCode.UNSET
    duration_ms = (span.end_time - span.start_time) / 1e6
    # The span (wall clock) encloses the call's timing (monotonic clock, whole ms).
    assert duration_ms >= usage.duration_ms - 1


def test_a_span_names_the_model_that_answered_beside_the_one_asked_for(fake_provider, spans):
    fake_provider.reply_model = "gpt-4o-mini-2024-07-18"
    job = summary_job()
    run_job(job.pk)

    (span,) = [s for s in spans.get_finished_spans() if s.attributes["ai_fields.job_id"] == job.pk]
    assert span.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert span.attributes["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"


def test_a_failed_call_span_carries_the_error_code(fake_provider, spans):
    fake_provider.enqueue_fault(status=429)
    run_job(summary_job().pk)
    (span,) = spans.get_finished_spans()
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes["error.type"] == "rate_limited"
    assert span.attributes["ai_fields.error_code"] == "rate_limited"
    assert "HTTP 429" in span.status.description


def test_a_streamed_call_is_marked_on_its_span_and_log(fake_provider, spans, caplog):
    from tests.testapp.models import Story

    caplog.set_level(logging.INFO, logger="django_ai_fields")
    story = Story.objects.create(title="Ada")
    job = AIJob.objects.get(object_id=str(story.pk), field_name="text")
    run_job(job.pk)
    (span,) = spans.get_finished_spans()
    assert span.attributes["ai_fields.streamed"] is True
    (record,) = call_records(caplog)
    assert record.streamed is True
