"""What the worker costs per job: throughput against RQ no-op jobs, and queries."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from functools import partial

from django.db import connection, models, reset_queries, transaction
from django.test.utils import CaptureQueriesContext

from django_ai_fields.fields import ai_fields_of
from django_ai_fields.intake.outbox import request_jobs
from django_ai_fields.jobs.tasks import run_job
from django_ai_fields.models import AIJob, Status
from tests.testapp.models import Article, Lead

from . import data
from .fake_llm import fake_server, openai_at
from .harness import Config, Figure, Timing, goal_met, interleaved, medians, sample_table, timed
from .workers import drain, get_queue, noop


def throughput(cfg: Config) -> Figure:
    """Jobs/s of one in-process SimpleWorker: AI jobs vs no-op jobs on the same queue."""
    jobs = cfg.throughput_jobs
    with fake_server() as server:

        def over_sdk(size: int) -> Timing:
            with openai_at(server):
                return _drain_ai(size)

        cases: dict[str, Callable[[int], Timing]] = {
            "rq_noop": _drain_noop,
            "ai_offline": _drain_ai,
            "ai_openai_sdk": over_sdk,
        }
        for case in cases.values():  # warm-up: imports, SDK client, first connections
            case(3)
        runs = {name: partial(case, jobs) for name, case in cases.items()}
        samples = interleaved(cfg.slow_reps, runs)
        calls = server.calls
    times = medians(samples)
    wall = {name: jobs / t.wall for name, t in times.items()}
    cpu = {name: jobs / t.cpu for name, t in times.items()}
    ratio = wall["ai_offline"] / wall["rq_noop"]
    return Figure(
        key="worker_throughput",
        title="worker throughput, zero-latency provider",
        ratio=ratio,
        ratio_label="AI jobs/s (offline provider) / RQ no-op jobs/s (wall time)",
        goal=">= 0.5",
        met=goal_met(ratio, ">= 0.5"),
        absolute={
            "jobs_per_run": jobs,
            "rq_noop_jobs_per_s": round(wall["rq_noop"], 1),
            "ai_offline_jobs_per_s": round(wall["ai_offline"], 1),
            "ai_openai_sdk_jobs_per_s": round(wall["ai_openai_sdk"], 1),
            "ratio_openai_sdk": round(wall["ai_openai_sdk"] / wall["rq_noop"], 3),
            "ai_offline_ms_per_job": round(1000 / wall["ai_offline"], 2),
            "rq_noop_ms_per_job": round(1000 / wall["rq_noop"], 2),
            "cpu_ratio_offline": round(cpu["ai_offline"] / cpu["rq_noop"], 3),
            "fake_provider_calls": calls,
            "samples": sample_table(samples),
        },
        notes=[
            "One rq.SimpleWorker in this process (burst), the same for both job kinds.",
            "ai_openai_sdk: the real openai SDK over loopback HTTP to tests/fake_provider.py.",
            "AI jobs are Lead's three fields (text, choices, JSON Schema) in equal parts.",
            "cpu_ratio_offline leaves out time spent waiting (disk syncs, a Redis server).",
        ],
    )


def _drain_noop(jobs: int) -> Timing:
    queue = get_queue()
    queue.empty()
    for _ in range(jobs):
        queue.enqueue(noop)
    elapsed = timed(drain)
    assert len(queue) == 0
    return elapsed


def _drain_ai(jobs: int) -> Timing:
    """Jobs for Lead rows (three per row), enqueued at commit, then drained and checked."""
    data.reset()
    rows = max(1, jobs // 3)
    with transaction.atomic():
        for i in range(rows):
            Lead.objects.create(**{**data.lead_values(i), "summary": None, "heat": None})
    queued = AIJob.objects.filter(status=Status.QUEUED).count()
    assert queued == rows * 3, f"{queued} jobs queued, expected {rows * 3}"
    elapsed = timed(drain)
    outcome = data.statuses()
    assert outcome == {Status.SUCCEEDED: queued}, f"jobs ended {outcome}"
    scale = jobs / queued  # per `jobs` jobs, when rows * 3 != jobs
    return Timing(elapsed.wall * scale, elapsed.cpu * scale)


def queries_per_job(cfg: Config) -> Figure:
    """Queries of run_job for one job, by model (1 or 3 AI fields) and table size.

    The figure counts SQL statements other than transaction control, which some
    backends send as SQL (SQLite with transaction_mode IMMEDIATE: BEGIN, COMMIT)
    and others do not (psycopg); the totals are recorded too."""
    per_case: dict[str, list[int]] = {}
    totals: set[int] = set()
    kinds: Counter[str] = Counter()
    kinds_of_case = ""
    for model in (Article, Lead):
        for rows in (1, 50):
            statements = _job_statements(model, rows, cfg.query_sample)
            name = f"{model.__name__} ({len(ai_fields_of(model))} AI fields), {rows} rows"
            per_case[name] = [len(data_statements(job)) for job in statements]
            totals.update(len(job) for job in statements)
            if not kinds:
                kinds, kinds_of_case = Counter(map(statement_kind, statements[0])), name
    distinct = sorted({n for counts in per_case.values() for n in counts})
    worst = max(distinct)
    constant = len(distinct) == 1
    return Figure(
        key="queries_per_job",
        title="queries per processed job",
        ratio=float(worst),
        ratio_label="SQL statements per job, transaction control aside (max over all cases)",
        goal="<= 8",
        met=bool(goal_met(worst, "<= 8")) and constant,
        absolute={
            "constant": constant,
            "distinct_counts": distinct,
            "distinct_totals_with_transaction_control": sorted(totals),
            "by_case": {name: sorted(set(counts)) for name, counts in per_case.items()},
            "breakdown": dict(sorted(kinds.items())),
            "breakdown_of": kinds_of_case,
            "database": connection.vendor,
        },
        notes=["CaptureQueriesContext around run_job on pre-created jobs; offline provider."],
    )


def _job_statements(model: type[models.Model], rows: int, sample: int | None) -> list[list[str]]:
    """The SQL of each job run, for a table of ``rows`` rows with a job per AI field."""
    data.reset()
    data.fill(model, rows)
    fields = ai_fields_of(model)
    with transaction.atomic():
        for instance in model.objects.all():
            request_jobs(instance, fields, triggered_by="save")
    get_queue().empty()  # run here instead, one job at a time
    job_ids = list(AIJob.objects.order_by("pk").values_list("pk", flat=True))
    statements = []
    for job_id in job_ids[-sample:] if sample else job_ids:
        reset_queries()  # CaptureQueriesContext counts nothing once 9,000 are logged
        with CaptureQueriesContext(connection) as ctx:
            status = run_job(job_id)
        assert status == Status.SUCCEEDED, f"job {job_id} ended {status}"
        statements.append([q["sql"] for q in ctx.captured_queries])
    return statements


def data_statements(statements: list[str]) -> list[str]:
    return [sql for sql in statements if statement_kind(sql) not in TRANSACTION_CONTROL]


TRANSACTION_CONTROL = {"BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT"}

_TABLE = re.compile(r'(?:FROM|INTO|UPDATE)\s+"?(\w+)"?', re.IGNORECASE)


def statement_kind(sql: str) -> str:
    """'UPDATE django_ai_fields_aijob', 'SAVEPOINT', 'BEGIN'..."""
    words = sql.split()
    verb = words[0].upper() if words else "?"
    if verb in ("RELEASE", "ROLLBACK") and len(words) > 1:
        verb = f"{verb} {words[1].upper()}"
    table = _TABLE.search(sql) if verb in ("SELECT", "INSERT", "UPDATE", "DELETE") else None
    return f"{verb} {table.group(1)}" if table else verb
