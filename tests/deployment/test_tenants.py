"""A schema per tenant with real django-tenants on PostgreSQL (docs/deployment.md):
the app in TENANT_APPS (a job table in each schema) and in SHARED_APPS (one job table
in public), each with two tenant schemas, real ``rqworker`` processes started as
usual (in public), a live save and a backfill in each schema, a worker killed in
the middle of a provider call in one schema, and the sweep recovering its job there.

The project (tests/deployment/tenants/) has its own settings, its own PostgreSQL
database and its own Redis database; it runs when DATABASE_URL points at PostgreSQL
and REDIS_URL at a real Redis (CI's step 3)."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.fake_provider import FakeProvider, RecordedRequest

ROOT = Path(__file__).resolve().parents[2]
DATABASE_URL = os.environ.get("DATABASE_URL", "")
REDIS_URL = os.environ.get("REDIS_URL", "")

pytestmark = pytest.mark.skipif(
    not DATABASE_URL.startswith(("postgres://", "postgresql://"))
    or not REDIS_URL
    or importlib.util.find_spec("django_tenants") is None,
    reason="needs PostgreSQL (DATABASE_URL), a real Redis (REDIS_URL) and django-tenants",
)

JOB_TIMEOUT = 6
SLOW = "SLOW"


class TenantsProject:
    """The django-tenants project, run as its own processes."""

    def __init__(self, placement: str, ai_fields: dict[str, Any]) -> None:
        self.placement = placement
        self.database = f"ai_fields_tenants_{os.getpid()}_{placement}"
        # Redis databases 13 and 14: away from the suite's (1-15 by worker or pid) as far
        # as a shared server allows; flushed before use.
        db_number = {"tenant": 13, "shared": 14}[placement]
        self.redis_url = urlunsplit(urlsplit(REDIS_URL)._replace(path=f"/{db_number}"))
        self.ai_fields = ai_fields
        self.workers: list[subprocess.Popen[bytes]] = []

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AI_FIELDS_", "DJANGO_"))}
        env.update(
            DJANGO_SETTINGS_MODULE="tests.deployment.tenants.settings",
            TENANTS_PLACEMENT=self.placement,
            TENANTS_DB_NAME=self.database,
            TENANTS_REDIS_URL=self.redis_url,
            TENANTS_AI_FIELDS=json.dumps(self.ai_fields),
            PYTHONPATH=str(ROOT),
        )
        return env

    def run(self, *args: str, timeout: float = 300) -> str:
        result = subprocess.run(
            [sys.executable, *args],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def manage(self, *args: str) -> str:
        return self.run("-m", "django", *args)

    def drive(self, *args: str) -> Any:
        return json.loads(self.run("-m", "tests.deployment.tenants.driver", *args).splitlines()[-1])

    def create(self) -> None:
        self._server_sql(
            f'DROP DATABASE IF EXISTS "{self.database}"', f'CREATE DATABASE "{self.database}"'
        )
        import redis

        redis.Redis.from_url(self.redis_url).flushdb()
        self.manage("migrate_schemas", "--shared", "-v", "0")

    def drop(self) -> None:
        self.stop_workers()
        with contextlib.suppress(Exception):
            self._server_sql(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')

    def _server_sql(self, *statements: str) -> None:
        import psycopg

        with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)

    def start_worker(self) -> subprocess.Popen[bytes]:
        """``manage.py rqworker default --with-scheduler``, as a user starts it."""
        worker = subprocess.Popen(
            [sys.executable, "-m", "django", "rqworker", "default", "--with-scheduler"],
            cwd=ROOT,
            env=self.env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.workers.append(worker)
        return worker

    def kill_workers(self) -> None:
        """SIGKILL every worker and its work horse (a process group of its own, RQ's
        setpgrp): nothing gets to clean up."""
        for worker in self.workers:
            for pid in [*children(worker.pid), worker.pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
            worker.wait(timeout=30)
        self.workers = []

    def stop_workers(self) -> None:
        for worker in self.workers:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.pid, signal.SIGTERM)
        for worker in self.workers:
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
        self.workers = []

    def wait_for(
        self, done: Callable[[dict[str, Any]], bool], seconds: float = 120
    ) -> dict[str, Any]:
        deadline = time.monotonic() + seconds
        while True:
            state = self.drive("state")
            if done(state):
                return state
            assert time.monotonic() < deadline, json.dumps(state, indent=1)
            time.sleep(0.5)


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def jobs_by_schema(state: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Every job, under the schema of the row it is for: the schema whose table holds
    it (TENANT_APPS), or the schema it recorded (SHARED_APPS: all in public)."""
    found: dict[str, list[dict[str, Any]]] = {"acme": [], "globex": []}
    for schema, content in state.items():
        for job in content.get("jobs", []):
            found.setdefault(job["schema"] if schema == "public" else schema, []).append(job)
    return found


def all_finished(state: dict[str, Any]) -> bool:
    jobs = [job for jobs in jobs_by_schema(state).values() for job in jobs]
    return bool(jobs) and all(job["status"] in ("succeeded", "failed") for job in jobs)


def summary_of(request: RecordedRequest) -> str:
    prompt = re.sub(r"<[^>]+>", "", str(request.body["messages"][-1]["content"]))  # <data> marks
    match = re.search(r"Summarize the lead (.*) at (.*)\.", prompt)
    assert match, prompt
    return f"Summary: {match.group(1)} at {match.group(2)}"


@pytest.fixture
def provider(fake_provider_server: FakeProvider) -> Iterator[tuple[FakeProvider, threading.Event]]:
    """The fake provider answers with the lead it was asked about; a prompt naming
    SLOW hangs until the returned event is set."""
    fp = fake_provider_server
    fp.reset()
    release = threading.Event()

    def respond(request: RecordedRequest) -> str:
        if SLOW in str(request.body) and not release.is_set():
            release.wait(60)
        return summary_of(request)

    fp.responder = respond
    yield fp, release
    release.set()
    fp.reset()


@pytest.mark.parametrize("placement", ["tenant", "shared"])
def test_two_tenant_schemas_each_run_their_own_jobs(
    placement: str, provider: tuple[FakeProvider, threading.Event]
) -> None:
    fp, release = provider
    project = TenantsProject(
        placement,
        {
            "DEFAULT_PROVIDER": "openai",
            "PROVIDERS": {
                "openai": {"API_KEY": "sk-test", "BASE_URL": fp.openai_base_url, "TIMEOUT": 60}
            },
            "JOB_TIMEOUT": JOB_TIMEOUT,
            "RETRY_BACKOFF": 0,
            "SWEEP_INTERVAL": 0,  # the test runs the sweep itself (ai_requeue)
            "PENDING_GRACE": 1,
        },
    )
    project.create()
    try:
        run_scenario(project, fp, release)
    finally:
        project.drop()


def run_scenario(project: TenantsProject, fp: FakeProvider, release: threading.Event) -> None:
    project.drive("tenants", "acme", "globex")
    project.start_worker()
    project.start_worker()

    # A live save in each schema: both leads are row 1 of their own table.
    assert project.drive("save", "acme", "Ada", "Acme")["lead"] == 1
    assert project.drive("save", "globex", "Grace", "Globex")["lead"] == 1
    state = project.wait_for(all_finished)
    assert state["acme"]["leads"] == {"1": "Summary: Ada at Acme"}
    assert state["globex"]["leads"] == {"1": "Summary: Grace at Globex"}

    # A backfill in each schema, as django-tenants runs commands.
    for schema in ("acme", "globex"):
        project.manage("tenant_command", "ai_regenerate", "crm.Lead", f"--schema={schema}")
    state = project.wait_for(lambda s: all_finished(s) and len(jobs_by_schema(s)["acme"]) == 2)
    for schema in ("acme", "globex"):
        triggers = [job["triggered_by"] for job in jobs_by_schema(state)[schema]]
        assert triggers == ["create", "command"]

    # A worker killed in the middle of a provider call for acme's new lead.
    calls_before = fp.calls
    assert project.drive("save", "acme", SLOW, "Acme")["lead"] == 2
    deadline = time.monotonic() + 60
    while not any(SLOW in str(r.body) for r in fp.requests[calls_before:]):
        assert time.monotonic() < deadline, "the slow call never reached the provider"
        time.sleep(0.1)
    project.kill_workers()
    release.set()
    state = project.drive("state")
    [slow_job] = [j for j in jobs_by_schema(state)["acme"] if j["object_id"] == "2"]
    assert slow_job["status"] == "running"

    # The sweep (started in public, like every command) finds it in acme's schema.
    time.sleep(JOB_TIMEOUT + 1)
    assert "1 lost job(s) requeued" in project.manage("ai_requeue")
    project.start_worker()
    state = project.wait_for(all_finished)

    by_schema = jobs_by_schema(state)
    [slow_job] = [j for j in by_schema["acme"] if j["object_id"] == "2"]
    assert slow_job["status"] == "succeeded" and slow_job["attempts"] == 2
    assert state["acme"]["leads"] == {"1": "Summary: Ada at Acme", "2": f"Summary: {SLOW} at Acme"}
    # Nothing crossed schemas: each job wrote its own schema's row, and globex saw no
    # job of acme's (three jobs in acme, two in globex, none elsewhere).
    assert state["globex"]["leads"] == {"1": "Summary: Grace at Globex"}
    assert sorted(by_schema) == ["acme", "globex"]
    assert [len(by_schema["acme"]), len(by_schema["globex"])] == [3, 2]
    names = {"acme": {"Ada", SLOW}, "globex": {"Grace"}}
    for schema, jobs in by_schema.items():
        for job in jobs:
            assert job["status"] == "succeeded"
            assert job["output"].split(" at ")[0].removeprefix("Summary: ") in names[schema]
            assert job["schema"] == schema
    if project.placement == "tenant":
        assert "jobs" not in state["public"]  # no job table in public at all
