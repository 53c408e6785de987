"""A schema per tenant at scale: 50 django-tenants schemas, real ``rqworker`` processes.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python benchmarks/tenants.py [--schemas 50] [--workers 2] [--placement tenant]

Uses the django-tenants project of the tests (tests/deployment/tenants/: its own
database and Redis database) and the fake provider answering at once. Figures:

- ``create``: seconds to create the tenants (each creates and migrates its schema);
- ``saves``: one live save in each schema (one process), seconds;
- ``drained``: from the first job's creation to the last job's end, seconds, and
  how many tasks (drains: one per schema) ran them;
- ``saves_in_one_schema`` / ``drained_in_one_schema``: the same number of saves in
  one schema (one drain at a time): what a drain per schema costs;
- ``sweep``: one sweep over every schema with nothing to do (``sweep.sweep()``
  in-process): seconds and queries.

Figures go to docs/deployment.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.deployment.test_tenants import TenantsProject, summary_of
from tests.fake_provider import running_fake_provider


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schemas", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--placement", choices=["tenant", "shared"], default="tenant")
    options = parser.parse_args()
    with running_fake_provider() as fp:
        fp.responder = summary_of
        project = TenantsProject(
            options.placement,
            {
                "DEFAULT_PROVIDER": "openai",
                "PROVIDERS": {"openai": {"API_KEY": "sk-test", "BASE_URL": fp.openai_base_url}},
                "SWEEP_INTERVAL": 0,
            },
        )
        project.create()
        try:
            print(json.dumps(run(project, options), indent=1))
        finally:
            project.drop()


def run(project: TenantsProject, options: argparse.Namespace) -> dict[str, object]:
    names = [f"t{n:03d}" for n in range(options.schemas)]
    start = time.perf_counter()
    project.drive("tenants", *names)
    created = time.perf_counter() - start
    empty_sweep = project.drive("sweep")
    for _ in range(options.workers):
        project.start_worker()
    time.sleep(3)  # the workers are up and idle
    saves = project.drive("saves", str(options.schemas))
    drained = project.drive("wait", str(options.schemas), "300")
    after_sweep = project.drive("sweep")
    # The same number of saves in one schema: what one drain per schema costs.
    one_schema = project.drive("saves", str(options.schemas), names[0])
    one_drained = project.drive("wait", str(2 * options.schemas), "300", str(options.schemas))
    return {
        "schemas": options.schemas,
        "workers": options.workers,
        "placement": options.placement,
        "create_seconds": round(created, 1),
        "saves": saves,
        "drained": drained,
        "sweep_nothing_to_do": empty_sweep,
        "sweep_after_the_saves": after_sweep,
        "saves_in_one_schema": one_schema,
        "drained_in_one_schema": one_drained,
    }


if __name__ == "__main__":
    main()
