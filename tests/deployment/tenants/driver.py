"""What the tests (and benchmarks/tenants.py) do inside the django-tenants project, one
command per process: ``python -m tests.deployment.tenants.driver COMMAND [ARGS]``
with DJANGO_SETTINGS_MODULE=tests.deployment.tenants.settings. Prints JSON.

- ``tenants NAME...``: create these tenants (each creates and migrates its schema)
- ``save SCHEMA NAME COMPANY``: a live save of one Lead in that schema
- ``saves COUNT``: one live save in each of the first COUNT tenants
- ``state``: per schema, its leads and its jobs (and those of a shared job table)
"""

from __future__ import annotations

import json
import sys
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
        for schema in names:
            with schema_context(schema):
                Lead.objects.create(name=f"Lead of {schema}", company=schema.title())
        return {"saved": len(names)}
    if command == "state":
        return {schema: schema_state(schema) for schema in ["public", *tenant_schemas()]}
    raise SystemExit(f"unknown command {command!r} ({connection.vendor})")


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
