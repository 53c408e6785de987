"""What the tests (and benchmarks/tenants.py) do inside the django-tenants project, one
command per process: ``python -m tests.deployment.tenants.driver COMMAND [ARGS]``
with DJANGO_SETTINGS_MODULE=tests.deployment.tenants.settings. Prints JSON.

- ``tenants NAME...``: create these tenants (each creates and migrates its schema)
- ``save SCHEMA NAME COMPANY``: a live save of one Lead in that schema
- ``saves COUNT``: one live save in each of the first COUNT tenants
- ``state``: per schema, its leads and its jobs (and those of a shared job table)
- ``wait COUNT SECONDS [NEWEST]``: once COUNT jobs (all schemas) finished, the seconds
  from the first creation to the last end (of the NEWEST jobs), and how many tasks ran them
- ``sweep``: one sweep over every schema: seconds, queries, its report
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import django


def main(argv: list[str]) -> Any:
    django.setup()
    from django.db import connection
    from django_tenants.utils import get_tenant_model, schema_context

    from tests.deployment.tenants.crm.models import Lead

    command, args = argv[0], argv[1:]
    if command == "tenants":
        client = get_tenant_model()
        for name in args:
            client.objects.create(schema_name=name, name=name.title())
        return {"tenants": args}
    if command == "save":
        schema, name, company = args
        with schema_context(schema):
            lead = Lead.objects.create(name=name, company=company)
        return {"schema": schema, "lead": lead.pk}
    if command == "saves":
        names = tenant_schemas()[: int(args[0])]
        if len(args) > 1:  # saves COUNT SCHEMA: all of them in one schema
            names = [args[1]] * int(args[0])
        start = time.perf_counter()
        for schema in names:
            with schema_context(schema):
                Lead.objects.create(name=f"Lead of {schema}", company=schema.title())
        return {"saved": len(names), "seconds": round(time.perf_counter() - start, 3)}
    if command == "wait":
        return wait_for_jobs(int(args[0]), float(args[1]), int(args[2]) if args[2:] else None)
    if command == "sweep":
        return timed_sweep()
    if command == "state":
        return {schema: schema_state(schema) for schema in ["public", *tenant_schemas()]}
    raise SystemExit(f"unknown command {command!r} ({connection.vendor})")


def finished_jobs() -> list[tuple[str, str, Any, Any]]:
    """(status, task id, created, finished) of every finished job, in every schema."""
    from django_ai_fields.dispatch import context
    from django_ai_fields.models import FINISHED_STATUSES, AIJob

    found = []
    for visit in context.visits():
        with context.restore(visit):
            jobs = AIJob.objects.filter(status__in=FINISHED_STATUSES)
            found += list(jobs.values_list("status", "rq_job_id", "created_at", "finished_at"))
    return found


def wait_for_jobs(count: int, seconds: float, newest: int | None = None) -> dict[str, Any]:
    """Once ``count`` jobs finished: from the first one's creation to the last one's
    end, over the ``newest`` created (all by default); read from the jobs, so the
    polling's own load barely matters."""
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        finished = finished_jobs()
        if len(finished) >= count:
            finished = sorted(finished, key=lambda job: job[2])[-(newest or count) :]
            first = min(created for _s, _t, created, _f in finished)
            last = max(ended for _s, _t, _c, ended in finished)
            return {
                "seconds": round((last - first).total_seconds(), 2),
                "succeeded": sum(status == "succeeded" for status, *_rest in finished),
                "tasks": len({task for _status, task, *_rest in finished}),
            }
        time.sleep(2)
    return {"seconds": None, "finished": len(finished_jobs())}


def timed_sweep() -> dict[str, Any]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from django_ai_fields.jobs.sweep import sweep

    start = time.perf_counter()
    with CaptureQueriesContext(connection) as queries:
        report = sweep()
    seconds = time.perf_counter() - start
    return {"seconds": round(seconds, 3), "queries": len(queries), "report": str(report)}


def tenant_schemas() -> list[str]:
    from django_ai_fields.tenants.schemas import tenant_schemas

    return tenant_schemas("default")


def schema_state(schema: str) -> dict[str, Any]:
    from django.db import connection
    from django_tenants.utils import schema_context

    from django_ai_fields.models import AIJob, AIUsage

    with schema_context(schema):
        tables = set(connection.introspection.table_names())
        state: dict[str, Any] = {}
        if "crm_lead" in tables:
            from tests.deployment.tenants.crm.models import Lead

            state["leads"] = {
                str(pk): summary for pk, summary in Lead.objects.values_list("pk", "summary")
            }
        if "django_ai_fields_aijob" in tables:
            # The manager would show a tenant schema only its own jobs: read them all.
            jobs = AIJob._base_manager.order_by("pk")
            state["jobs"] = [
                {
                    "id": job.pk,
                    "object_id": job.object_id,
                    "schema": job.schema,
                    "status": job.status,
                    "attempts": job.attempts,
                    "triggered_by": job.triggered_by,
                    "output": job.output,
                }
                for job in jobs
            ]
            state["usage"] = AIUsage.objects.count()
        return state


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
