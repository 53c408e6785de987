"""End to end in headless Chromium: the example project served by ``runserver``, its
jobs run by a real ``rqworker``, on a database and Redis of its own (PostgreSQL and
the suite's Redis with DATABASE_URL/REDIS_URL, else SQLite and a private
redis-server).

A person logs into the admin, runs *Regenerate AI fields* on two leads, finds the
jobs in the AI jobs list and cancels one, adds a lead on the leads page, and
watches that page's badges turn to succeeded once a worker runs, without
reloading it. Another reviews the follow-up e-mails the demo proposed (review=True).

With ``AI_FIELDS_SCREENSHOTS=<dir>`` the test also saves the screenshots shown in
the docs there (``AI_FIELDS_SCREENSHOTS=docs/images``).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from tests.test_example_project import ExampleProject, example_project, stop

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SERVER_TIMEOUT = 30.0  # seconds for runserver to answer
WORKER_TIMEOUT_MS = 60_000  # for the worker to finish every job, seen through the badges
SCREENSHOTS = os.environ.get("AI_FIELDS_SCREENSHOTS", "")

# Run after `manage.py demo` (three leads, every job succeeded): Bletchley Ciphers gets a
# quota of zero requests a day, so regenerating Alan Turing fails with quota_exceeded.
SETUP_SCRIPT = """
import json
from django_ai_fields.rq_worker import SimpleWorker
from django_ai_fields.api import regenerate
from django_ai_fields.models import Quota
from django_ai_fields.queues import get_queue
from leads.models import Lead

Quota.objects.create(tenant="Bletchley Ciphers", kind="requests", period="day", limit=0)
regenerate(Lead.objects.get(name="Alan Turing"))
queue = get_queue()
SimpleWorker([queue], connection=queue.connection).work(burst=True)
print(json.dumps({lead.name: lead.pk for lead in Lead.objects.all()}))
"""

if not os.path.exists(CHROMIUM):
    pytest.skip(
        f"no Chromium at {CHROMIUM}: install it with `apt-get install chromium`",
        allow_module_level=True,
    )
sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="the Playwright driver is not installed: pip install -e '.[test]'",
)
expect = sync_api.expect
expect.set_options(timeout=15_000)  # each check waits this long for the page to agree


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_served(url: str, server: subprocess.Popen[bytes], project: ExampleProject) -> None:
    deadline = time.monotonic() + SERVER_TIMEOUT
    while True:
        assert server.poll() is None, f"runserver exited:\n{project.log('runserver')}"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            pass
        assert time.monotonic() < deadline, f"runserver did not answer:\n{project.log('runserver')}"
        time.sleep(0.1)


class Site(NamedTuple):
    project: ExampleProject
    base: str  # http://127.0.0.1:<port>
    leads: dict[str, int]  # lead ids by name


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """The example project with the demo's leads, served by runserver on a free port."""
    with example_project(tmp_path) as project:
        project.manage("demo")  # migrates, creates admin/admin, three leads, runs their jobs
        leads = project.shell(SETUP_SCRIPT)
        address = f"127.0.0.1:{free_port()}"
        server = project.start("runserver", "runserver", "--noreload", address)
        try:
            wait_until_served(f"http://{address}/admin/login/", server, project)
            yield Site(project, f"http://{address}", leads)
        finally:
            stop(server)


@pytest.fixture
def page() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60_000
        )
        try:
            context = browser.new_context(viewport={"width": 1440, "height": 900})
            page = context.new_page()
            page.set_default_timeout(20_000)
            yield page
        finally:
            browser.close()


def screenshot(page: Any, name: str, *, full_page: bool = True) -> None:
    if SCREENSHOTS:
        page.screenshot(path=str(Path(SCREENSHOTS) / name), full_page=full_page)


def badge(page: Any, lead_id: int, field: str) -> Any:
    return page.locator(f"#lead-{lead_id} .ai-status[data-ai-field='{field}']")


def admin_row(page: Any, **cells: str) -> Any:
    """The admin list's rows whose cells (by list_display name) read exactly so."""
    rows = page.locator("#result_list tbody tr")
    for column, text in cells.items():
        cell = page.locator(f".field-{column}", has_text=re.compile(rf"^\s*{re.escape(text)}\s*$"))
        rows = rows.filter(has=cell)
    return rows


def log_in(page: Any, base: str) -> None:
    page.goto(f"{base}/")
    expect(page).to_have_url(re.compile(r"/admin/login/\?next=/$"))
    page.fill("#id_username", "admin")
    page.fill("#id_password", "admin")
    page.click("input[type=submit]")
    expect(page).to_have_url(f"{base}/")


def regenerate_in_admin(page: Any, base: str, names: list[str]) -> None:
    page.goto(f"{base}/admin/leads/lead/")
    for name in names:
        admin_row(page, name=name).locator("input.action-select").check()
    page.select_option("select[name=action]", "regenerate_ai_fields")
    page.click("button[name=index]")
    # First the cost estimate; nothing is enqueued until it is confirmed.
    expect(page.locator(".ai-estimate")).to_contain_text("This requests 12 AI jobs for 2 row(s)")
    expect(page.locator(".ai-estimate")).to_contain_text("Worst-case cost: $")
    screenshot(page, "admin-regenerate-confirmation.png")
    page.click("input[value='Yes, regenerate']")
    expect(page.locator(".messagelist .success")).to_contain_text("12 AI jobs requested")


def cancel_job_in_admin(page: Any, base: str, lead_id: int, field: str) -> None:
    """The jobs just requested are in the AI jobs list, queued; cancel one of them."""
    page.goto(f"{base}/admin/django_ai_fields/aijob/?status__exact=queued")
    # Two leads, six AI fields each (summary, headline, heat, profile, logo_alt_text,
    # follow_up).
    expect(page.locator("#result_list tbody tr")).to_have_count(12)
    row = admin_row(page, target=f"leads.lead #{lead_id}", field_name=field)
    expect(row).to_have_count(1)
    row.locator("input.action-select").check()
    page.select_option("select[name=action]", "cancel_jobs")
    page.click("button[name=index]")
    expect(page.locator(".messagelist .success")).to_be_visible()
    page.goto(f"{base}/admin/django_ai_fields/aijob/")
    expect(admin_row(page, status_badge="Queued")).to_have_count(11)
    expect(admin_row(page, status_badge="Cancelled")).to_have_count(1)
    # Alan's six fields, over quota
    expect(admin_row(page, status_badge="Failed")).to_have_count(6)
    screenshot(page, "admin-jobs.png")


KATHERINE_NOTES = (
    "Trajectory analytics for 12 engineers in the aerospace industry; decision this week."
)


def add_lead(page: Any, base: str) -> int:
    page.goto(f"{base}/")
    page.fill("#id_name", "Katherine Johnson")
    page.fill("#id_company", "Orbital Mechanics")
    page.fill("#id_email", "katherine@orbital.example")
    page.fill("#id_notes", KATHERINE_NOTES)
    page.click("form.add-lead button[type=submit]")
    expect(page.locator(".messages .success")).to_contain_text("Katherine Johnson")
    first_row = page.locator("table.leads tbody tr").first
    expect(first_row).to_contain_text("Katherine Johnson")
    return int(first_row.get_attribute("id").removeprefix("lead-"))


def test_regenerate_in_admin_and_watch_the_badges_turn_succeeded(site: Site, page: Any) -> None:
    project, base, leads = site
    ada, grace, alan = leads["Ada Lovelace"], leads["Grace Hopper"], leads["Alan Turing"]
    log_in(page, base)
    expect(page.locator(".ai-status--succeeded")).to_have_count(6)  # Ada's and Grace's
    expect(badge(page, alan, "summary")).to_contain_text("Failed: ")

    regenerate_in_admin(page, base, ["Ada Lovelace", "Grace Hopper"])
    cancel_job_in_admin(page, base, ada, "profile")
    katherine = add_lead(page, base)

    # No worker yet: the jobs wait in the queue, and their badges poll their status.
    for lead in (grace, katherine):
        for field in ("summary", "heat", "profile"):
            expect(badge(page, lead, field)).to_have_text("Queued")
    expect(badge(page, ada, "profile")).to_have_text("Cancelled")
    expect(page.locator(".ai-status[data-status-url]")).to_have_count(8)

    worker = project.start("rqworker", "rqworker", "default", "--with-scheduler")
    try:
        # The test does not reload: status.js swaps the badges in as the jobs finish.
        unfinished = page.locator(".ai-status[data-status-url]")
        expect(unfinished).to_have_count(0, timeout=WORKER_TIMEOUT_MS)
    except AssertionError as error:
        log = project.log("rqworker")
        raise AssertionError(f"badges still unfinished; worker log:\n{log}") from error
    finally:
        stop(worker)

    for lead in (ada, grace, katherine):
        for field in ("summary", "heat"):
            expect(badge(page, lead, field)).to_have_text("Generated")
    for lead in (grace, katherine):
        expect(badge(page, lead, "profile")).to_have_text("Generated")
    expect(badge(page, ada, "profile")).to_have_text("Cancelled")
    expect(badge(page, alan, "heat")).to_contain_text("Failed: ")
    # Once nothing runs, leads.js reloads the page: the worker's values show.
    expect(page.locator(f"#lead-{katherine} td.summary .value")).to_have_text(
        KATHERINE_NOTES  # offline: the notes' one sentence is their summary
    )
    expect(page.locator(f"#lead-{katherine} td.profile .value")).to_contain_text(
        "aerospace · 12 employees"
    )
    screenshot(page, "example-leads.png")


def test_review_the_follow_up_proposals_in_the_admin(site: Site, page: Any) -> None:
    """The demo's follow-up e-mails (review=True) wait on *Review AI proposals*: one is
    edited and accepted on its page, the other accepted from the list."""
    project, base, leads = site
    ada, grace = leads["Ada Lovelace"], leads["Grace Hopper"]
    log_in(page, base)
    page.goto(f"{base}/admin/django_ai_fields/aiproposal/")
    # Alan's proposal was superseded by the setup's regenerate (whose job failed).
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(2)
    expect(page.locator("#content h1")).to_have_text("Review AI proposals")
    expect(rows.first.locator(".field-proposal")).to_contain_text("Wants 40 seats")
    screenshot(page, "admin-review.png")

    rows.filter(has_text=f"leads.lead #{ada}").locator(".field-target a").click()
    expect(page.locator("pre.ai-current")).to_have_text("-")
    page.fill("#id_value", "Dear Ada, here is the contract draft for your 40 seats.")
    page.click("input[name=_accept]")
    expect(page.locator(".messagelist .success")).to_contain_text("The value was written.")
    expect(rows).to_have_count(1)

    rows.first.locator("input.action-select").check()
    page.select_option("select[name=action]", "accept_proposals")
    page.click("button[name=index]")
    expect(page.locator(".messagelist .success")).to_contain_text("1 proposal(s) accepted")
    written = project.shell(
        "import json\nfrom leads.models import Lead\n"
        f"print(json.dumps([Lead.objects.get(pk={ada}).follow_up,"
        f" Lead.objects.get(pk={grace}).follow_up]))"
    )
    assert written[0] == "Dear Ada, here is the contract draft for your 40 seats."
    assert written[1].startswith("Evaluating us against two competitors.")

    page.goto(f"{base}/admin/leads/lead/{ada}/change/")
    expect(page.locator(".ai-history")).to_contain_text("Dear Ada, here is the contract")


# A month of priced calls for three models and two tenants, and quotas partly used:
# what the usage chart and the quota bars show.
SPEND_SCRIPT = """
import datetime, json
from decimal import Decimal
from django.utils import timezone
from django_ai_fields.models import AIUsage, Quota, QuotaUsage
from django_ai_fields.money.quotas import period_start

today = timezone.localdate()
models = [("gpt-4o-mini", "0.000900"), ("claude-haiku-4-5", "0.002100"), ("gpt-5.4", "0.004300")]
for n in range(21):
    day = today - datetime.timedelta(days=20 - n)
    moment = timezone.make_aware(datetime.datetime.combine(day, datetime.time(10)))
    for number, (model, cost) in enumerate(models):
        for tenant in ("Analytical Engines", "Navy Compilers"):
            calls = 1 + (n + number) % 4
            row = AIUsage.objects.create(
                tenant=tenant, provider="openai", model=model, input_tokens=900 * calls,
                output_tokens=120 * calls, cost_usd=Decimal(cost) * calls,
            )
            AIUsage.objects.filter(pk=row.pk).update(created_at=moment)
for tenant, used, limit in (("Analytical Engines", 3_400_000, 5), ("Navy Compilers", 4_600_000, 5)):
    Quota.objects.create(tenant=tenant, kind="cost_usd", period="month", limit=limit)
    QuotaUsage.objects.create(
        tenant=tenant, kind="cost_usd", period="month", period_start=period_start("month"),
        used=used,
    )
Quota.objects.create(tenant="Navy Compilers", kind="requests", period="day", limit=200)
QuotaUsage.objects.create(
    tenant="Navy Compilers", kind="requests", period="day", period_start=period_start("day"),
    used=58,
)
print(json.dumps({"ok": True}))
"""


def test_spend_chart_and_quota_bars_in_the_admin(site: Site, page: Any) -> None:
    project, base, _leads = site
    project.shell(SPEND_SCRIPT)
    log_in(page, base)
    page.goto(f"{base}/admin/django_ai_fields/aiusage/")
    chart = page.locator("svg.ai-spend-chart")
    expect(chart).to_have_attribute("data-days", "21")
    expect(page.locator(".ai-chart-legend")).to_contain_text("gpt-5.4")
    screenshot(page, "admin-usage-chart.png", full_page=False)  # the chart, not 100 rows
    page.click(".ai-chart-switch a:text('tenant')")
    expect(page.locator(".ai-chart-legend")).to_contain_text("Navy Compilers")
    page.goto(f"{base}/admin/django_ai_fields/quota/")
    expect(page.locator(".ai-quota--high")).to_have_count(1)  # 4.60 of 5 USD: amber
    expect(page.locator(".ai-quota--ok")).to_have_count(2)
    expect(page.locator(".ai-quota--full")).to_have_count(1)  # Bletchley's zero limit
    screenshot(page, "admin-quotas.png")
