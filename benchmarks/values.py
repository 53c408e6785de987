"""What finding stale values costs: ``api.stale()`` over a big table (issue 21, point 4).

Every row has a generated ``summary``, written by the newest of two jobs: an older
answer, then one third of the rows answered under an older definition (stale), one
in twenty edited by hand (never stale), the rest under the field's definition now.
``api.stale(Lead, "summary")`` must be one query whatever the number of rows; its
time is compared with reading the same table's primary keys.
"""

from __future__ import annotations

from django.contrib.contenttypes.models import ContentType
from django.db import connection

from django_ai_fields import api
from django_ai_fields.declare.definition import definition_hash
from django_ai_fields.fields import get_ai_field
from django_ai_fields.models import AIJob, Status
from tests.testapp.models import Lead

from . import data
from .harness import Config, Figure, QueryLog, interleaved, medians, sample_table, timed

OLD_DEFINITION = "0" * 64
BATCH = 5_000


def stale(cfg: Config) -> Figure:
    data.reset()
    data.fill(Lead, cfg.stale_rows)
    expected = add_jobs()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    rows = Lead.objects.all()
    with QueryLog() as log:
        found = len(api.stale(rows, "summary").values_list("pk", flat=True))
    assert found == expected, (found, expected)
    cases = {
        "stale": lambda: timed(lambda: list(api.stale(rows, "summary").values_list("pk"))),
        "count": lambda: timed(lambda: api.stale(rows, "summary").count()),
        "plain": lambda: timed(lambda: list(rows.values_list("pk"))),
    }
    samples = interleaved(cfg.slow_reps, cases)
    times = medians(samples)
    ratio = times["stale"].wall / times["plain"].wall
    return Figure(
        key="stale",
        title=f"api.stale() over {cfg.stale_rows:,} rows",
        ratio=ratio,
        ratio_label="stale rows' pks / every row's pks (wall time)",
        goal="",
        absolute={
            "rows": cfg.stale_rows,
            "stale_rows": expected,
            "jobs": AIJob.objects.count(),
            "queries": len(log),
            "stale_pks_ms": round(times["stale"].wall * 1000, 1),
            "stale_count_ms": round(times["count"].wall * 1000, 1),
            "all_pks_ms": round(times["plain"].wall * 1000, 1),
            "samples": sample_table(samples),
        },
        notes=[f"SQL: {log.statements[0]}", *plan()],
    )


def add_jobs() -> int:
    """Two succeeded summary jobs per row; returns how many rows are stale."""
    field = get_ai_field(Lead, "summary")
    current = definition_hash(field)
    content_type = ContentType.objects.get_for_model(Lead)
    stale_rows = 0
    jobs = []
    for i, pk in enumerate(Lead.objects.order_by("pk").values_list("pk", flat=True)):
        common = {
            "content_type": content_type,
            "object_id": str(pk),
            "field_name": "summary",
            "status": Status.SUCCEEDED,
        }
        jobs.append(AIJob(**common, definition_hash=OLD_DEFINITION, output="older"))
        if i % 20 == 0:
            jobs.append(AIJob(**common, triggered_by="manual", output="by hand"))
        elif i % 3 == 0:
            jobs.append(AIJob(**common, definition_hash=OLD_DEFINITION, output="old prompt"))
            stale_rows += 1
        else:
            jobs.append(AIJob(**common, definition_hash=current, output="current"))
        if len(jobs) >= BATCH:
            AIJob.objects.bulk_create(jobs)
            jobs = []
    AIJob.objects.bulk_create(jobs)
    return stale_rows


def plan() -> list[str]:
    """The database's plan of the query, for the notes."""
    query = api.stale(Lead.objects.all(), "summary").values_list("pk")
    return [f"plan: {line}" for line in query.explain().splitlines()]
