"""Running scenarios in their own processes, and the table of their figures."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.faults.harness import ROOT, PostgresCluster
from tests.faults.scenario import SCENARIOS

TEMPLATE = "faults_template"
SCENARIO_TIMEOUT = 240  # seconds, per scenario process
# Variables of the ordinary test runs that must not leak into the scenario processes.
SCRUBBED = ("AI_FIELDS_WORKER_PROCESS", "AI_FIELDS_TEST_OVERRIDES", "AI_FIELDS_TEST_SQLITE")


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    env.update(DJANGO_SETTINGS_MODULE="tests.faults.settings", PYTHONPATH=str(ROOT))
    return env


def prepare_template(cluster: PostgresCluster) -> None:
    """One migrated database that every scenario's database is copied from."""
    cluster.admin(f'DROP DATABASE IF EXISTS "{TEMPLATE}"')
    cluster.admin(f'CREATE DATABASE "{TEMPLATE}"')
    env = {**base_env(), "FAULTS_DATABASE_URL": cluster.url(TEMPLATE)}
    subprocess.run(
        [sys.executable, "-m", "django", "migrate", "-v", "0"],
        env=env,
        cwd=ROOT,
        check=True,
        timeout=300,
    )


def run_scenario(name: str, cluster: PostgresCluster | None) -> dict[str, Any]:
    """Run one scenario; returns its figures (``skipped`` holds a reason if it could not run)."""
    scenario = SCENARIOS[name]
    if scenario.needs_postgres and cluster is None:
        return {"scenario": name, "fault": scenario.fault, "skipped": "no private PostgreSQL"}
    workdir = Path(tempfile.mkdtemp(prefix=f"ai-fields-faults-{name}-"))
    env = {**base_env(), "FAULTS_WORKDIR": str(workdir)}
    database = f"faults_{name}_{os.getpid()}"
    if cluster is not None:
        cluster.admin(f'CREATE DATABASE "{database}" TEMPLATE "{TEMPLATE}"')
        env.update(
            FAULTS_DATABASE_URL=cluster.url(database),
            FAULTS_PG_WORKDIR=str(cluster.workdir),
            FAULTS_PG_PORT=str(cluster.port),
        )
    else:
        env["FAULTS_SQLITE"] = str(workdir / "db.sqlite3")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "tests.faults.scenario", name],
            env=env,
            cwd=ROOT,
            capture_output=True,
            timeout=SCENARIO_TIMEOUT,
        )
        result = parse(done)
    finally:
        if cluster is not None:
            cluster.admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    result["database"] = "PostgreSQL" if cluster is not None else "SQLite"
    if os.environ.get("FAULTS_VERBOSE"):
        result["workdir"] = str(workdir)  # the workers' logs, kept
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def parse(done: subprocess.CompletedProcess[bytes]) -> dict[str, Any]:
    for line in done.stdout.decode(errors="replace").splitlines():
        if line.startswith("FAULTS-RESULT "):
            return dict(json.loads(line.removeprefix("FAULTS-RESULT ")))
    tail = done.stderr.decode(errors="replace")[-3000:]
    raise RuntimeError(f"scenario printed no result (exit {done.returncode}):\n{tail}")


def failed_text(failed: dict[str, int]) -> str:
    return ", ".join(f"{n} {code}" for code, n in sorted(failed.items())) or "0"


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def what_it_took(r: dict[str, Any]) -> str:
    """The evidence that the fault hit: calls, faults injected, circuits, kills, attempts."""
    parts = [f"{r['provider_calls']} calls"]
    if r["injected"]:
        parts.append(" + ".join(f"{n} x {kind}" for kind, n in sorted(r["injected"].items())))
    if r.get("circuit_opened"):
        parts.append(f"circuit opened {plural(r['circuit_opened'], 'time')}")
    if r.get("worker_kills"):
        parts.append(plural(r["worker_kills"], "kill"))
    if r.get("worker_restarts") and not r.get("worker_kills"):
        parts.append(plural(r["worker_restarts"], "worker restart"))
    if r.get("retried_jobs"):
        retried = plural(r["retried_jobs"], "job")
        parts.append(f"{retried} retried (max {r['max_attempts']} attempts)")
    return ", ".join(parts)


def table(results: list[dict[str, Any]]) -> str:
    head = (
        "| scenario | load (jobs) | injected fault | succeeded | superseded | failed (code) "
        "| lost | double-written | extra answered calls | what it took | time (s) |\n"
        "| --- | ---: | --- | ---: | ---: | --- | ---: | ---: | ---: | --- | ---: |"
    )
    lines = [head]
    for r in results:
        if "skipped" in r:
            lines.append(f"| {r['scenario']} | - | {r['fault']} | skipped: {r['skipped']} "
                         "| | | | | | | |")  # fmt: skip
            continue
        lines.append(
            f"| {r['scenario']} | {r['jobs']} | {r['fault']} | {r['succeeded']} "
            f"| {r['superseded']} | {failed_text(r['failed'])} | {r['lost']} "
            f"| {r['double_written']} | {r['extra_answered_calls']} | {what_it_took(r)} "
            f"| {r['seconds']} |"
        )
    return "\n".join(lines)
