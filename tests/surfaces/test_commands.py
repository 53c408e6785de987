"""Management commands: ai_regenerate, ai_cleanup, ai_status, ai_usage."""

from __future__ import annotations

import datetime
import io
import json
import re
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from django_ai_fields.models import AIJob, AIUsage
from tests.surfaces import (
    age_job,
    dead_queue,
    live_worker,  # noqa: F401  (fixture)
    make_usage,
)
from tests.testapp.models import Lead

pytestmark = pytest.mark.django_db


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def run(*args: str, stdout: io.StringIO | None = None) -> str:
    out = stdout or io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def fails(*args: str) -> CommandError:
    with pytest.raises(CommandError) as caught:
        run(*args)
    assert caught.value.returncode == 1
    return caught.value


def leads(count: int, **values: str) -> list[Lead]:
    return [Lead.objects.create(name=f"L{i}", **values) for i in range(count)]


# -- ai_regenerate --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["testapp.Nope"], "Unknown model 'testapp.Nope'"),
        (["nonsense"], "Unknown model"),
        (["testapp.PlainLead"], "testapp.PlainLead has no AI fields"),
        (["testapp.Lead", "--field", "name"], "has no AI field name"),
        (["testapp.Lead", "--filter", "colour=red"], "Invalid --filter"),
        (["testapp.Lead", "--filter", "no-equals-sign"], "use LOOKUP=VALUE"),
        (["testapp.Lead", "--batch-size", "0"], "--batch-size must be at least 1"),
    ],
)
def test_ai_regenerate_rejects_bad_arguments(args, message):
    assert message in str(fails("ai_regenerate", *args))


def test_ai_regenerate_dry_run_counts_and_changes_nothing():
    leads(3, notes="n")
    before = AIJob.objects.count()
    out = run("ai_regenerate", "testapp.Lead", "--dry-run")
    assert out.splitlines()[0] == "Dry run: would request 9 AI job(s) for 3 row(s) of testapp.Lead."
    out = run("ai_regenerate", "testapp.Lead", "--field", "heat", "--dry-run")
    assert "would request 3 AI job(s) for 3 row(s)" in out
    assert AIJob.objects.count() == before


def test_ai_regenerate_only_empty_and_filters_narrow_the_rows():
    a, b, c = leads(3, notes="n")
    Lead.objects.filter(pk=a.pk).update(summary="done", company="Acme")
    Lead.objects.filter(pk=b.pk).update(company="Acme")
    out = run(
        "ai_regenerate",
        "testapp.Lead",
        "--field",
        "summary",
        "--only-empty",
        "--filter",
        "company=Acme",
        "--dry-run",
    )
    assert "would request 1 AI job(s) for 1 row(s)" in out
    out = run("ai_regenerate", "testapp.Lead", "--filter", f"pk__in={a.pk},{c.pk}", "--dry-run")
    assert "for 2 row(s)" in out


@pytest.mark.django_db(transaction=True)
def test_ai_regenerate_enqueues_in_batches_with_progress_lines():
    rows = leads(5, notes="n")
    AIJob.objects.update(status="succeeded")
    out = run("ai_regenerate", "testapp.Lead", "--field", "heat", "--batch-size", "2")
    assert out.splitlines() == [
        "2/5 rows",
        "4/5 rows",
        "5/5 rows",
        "Requested 5 AI job(s) for 5 row(s) of testapp.Lead: 5 queued.",
    ]
    fresh = AIJob.objects.filter(triggered_by="command")
    assert sorted(int(j.object_id) for j in fresh) == sorted(r.pk for r in rows)
    assert {(j.field_name, j.status, j.force) for j in fresh} == {("heat", "queued", True)}


@pytest.mark.django_db(transaction=True)
def test_ai_regenerate_draws_a_bar_on_a_terminal():
    leads(2, notes="n")
    out = run("ai_regenerate", "testapp.Lead", "--field", "heat", stdout=TTY())
    assert "\r[" + "#" * 30 + "] 2/2 rows" in out
    assert out.endswith("2 queued.\n")


@pytest.mark.django_db(transaction=True)
def test_ai_regenerate_sync_writes_values_in_process(fake_provider):
    rows = leads(2, company="Acme")
    Lead.objects.filter(pk=rows[0].pk).update(summary="keep me")
    fake_provider.reply_text = "Fresh"
    out = run("ai_regenerate", "testapp.Lead", "--field", "summary", "--only-empty", "--sync")
    assert "Requested 1 AI job(s) for 1 row(s) of testapp.Lead: 1 succeeded." in out
    values = dict(Lead.objects.values_list("pk", "summary"))
    assert values == {rows[0].pk: "keep me", rows[1].pk: "Fresh"}
    assert fake_provider.calls == 1


@pytest.mark.django_db(transaction=True)
def test_ai_regenerate_sync_exits_non_zero_when_jobs_fail(fake_provider):
    leads(2, company="Acme")
    fake_provider.fail_all_with = 401
    error = fails("ai_regenerate", "testapp.Lead", "--field", "summary", "--sync")
    assert str(error) == "2 job(s) failed; see the AI jobs admin."


@pytest.mark.django_db(transaction=True)
def test_ai_regenerate_exits_non_zero_when_redis_is_down(monkeypatch):
    leads(1, notes="n")
    AIJob.objects.update(status="succeeded")
    monkeypatch.setattr("django_ai_fields.queues.get_queue", lambda *a: dead_queue())
    error = fails("ai_regenerate", "testapp.Lead", "--field", "heat")
    assert "1 job(s) stay pending" in str(error)
    assert AIJob.objects.filter(triggered_by="command", status="pending").count() == 1


# -- ai_cleanup -----------------------------------------------------------------------------------


def old_and_new_jobs() -> dict[str, AIJob]:
    long_ago = datetime.timedelta(days=40)
    jobs = {
        "old_done": AIJob.objects.create(status="succeeded"),
        "old_failed": AIJob.objects.create(status="failed"),
        "old_pending": AIJob.objects.create(status="pending"),
        "old_running": AIJob.objects.create(status="running"),
        "new_done": AIJob.objects.create(status="succeeded"),
    }
    for name in ("old_done", "old_failed"):
        age_job(jobs[name], finished_at=long_ago, updated_at=long_ago)
    for name in ("old_pending", "old_running"):
        age_job(jobs[name], updated_at=long_ago, created_at=long_ago)
    make_usage(days_ago=40, job=jobs["old_done"])
    make_usage(days_ago=40, job=jobs["old_running"])  # its job is unfinished: kept
    make_usage(days_ago=40)
    make_usage(days_ago=1, job=jobs["new_done"])
    return jobs


def test_ai_cleanup_deletes_old_finished_jobs_and_usage_only():
    jobs = old_and_new_jobs()
    out = run("ai_cleanup", "--older-than", "30d")
    assert out.startswith("Deleted 2 finished job(s) and 2 usage row(s) older than ")
    left = set(AIJob.objects.values_list("pk", flat=True))
    assert left == {jobs[n].pk for n in ("old_pending", "old_running", "new_done")}
    assert sorted(AIUsage.objects.values_list("job_id", flat=True)) == sorted(
        [jobs["old_running"].pk, jobs["new_done"].pk]
    )


def test_ai_cleanup_dry_run_deletes_nothing():
    old_and_new_jobs()
    out = run("ai_cleanup", "--older-than", "30d", "--dry-run")
    assert out.startswith("Dry run: would delete 2 finished job(s) and 2 usage row(s)")
    assert (AIJob.objects.count(), AIUsage.objects.count()) == (5, 4)


def test_ai_cleanup_accepts_hours():
    job = AIJob.objects.create(status="cancelled")
    age_job(job, finished_at=datetime.timedelta(hours=3))
    assert run("ai_cleanup", "--older-than", "4h").startswith("Deleted 0 finished job(s)")
    assert run("ai_cleanup", "--older-than", "2h").startswith("Deleted 1 finished job(s)")


@pytest.mark.parametrize("age", ["30", "30m", "d", "-1d", "thirty"])
def test_ai_cleanup_rejects_a_bad_age(age):
    assert "use a number and d or h" in str(fails("ai_cleanup", f"--older-than={age}"))


def test_ai_cleanup_requires_an_age():
    with pytest.raises(CommandError, match="--older-than"):
        run("ai_cleanup")


# -- ai_status ------------------------------------------------------------------------------------


def test_ai_status_is_unhealthy_without_a_worker():
    error = fails("ai_status", "--no-providers")
    assert str(error) == "Unhealthy: no worker listens on queue 'default'."


def test_ai_status_is_healthy_with_a_worker_and_no_stuck_jobs(live_worker):  # noqa: F811
    Lead.objects.create(name="Ada", notes="n")
    out = run("ai_status", "--no-providers")
    assert "Workers: 1" in out
    assert f"  {live_worker.name} (" in out
    assert "Jobs: pending 3, queued 0, running 0, in_review 0; finished in the last 24 h: " in out
    assert "finished in the last 24 h: succeeded 0" in out
    assert "Stuck jobs: 0" in out
    assert out.rstrip().endswith("Healthy.")


def test_ai_status_fails_on_stuck_jobs(live_worker):  # noqa: F811
    job = AIJob.objects.create(status="running")
    age_job(job, started_at=datetime.timedelta(hours=2))
    out = io.StringIO()
    with pytest.raises(CommandError, match=r"Unhealthy: 1 stuck job\(s\)"):
        call_command("ai_status", "--no-providers", stdout=out)
    assert f"  #{job.pk} running since " in out.getvalue()


def test_ai_status_fails_when_redis_is_unreachable(monkeypatch):
    monkeypatch.setattr("django_ai_fields.queues.get_queue", lambda *a: dead_queue())
    error = fails("ai_status", "--no-providers")
    assert str(error).startswith("Unhealthy: Redis unreachable (ConnectionError")


def test_ai_status_json(live_worker, fake_provider):  # noqa: F811
    out = io.StringIO()
    call_command("ai_status", "--json", stdout=out)
    report = json.loads(out.getvalue())
    assert report["healthy"] is True
    assert report["queue"]["workers"][0]["name"] == live_worker.name
    assert report["jobs"]["pending"] == 0
    providers = {p["name"]: p["ok"] for p in report["providers"]}
    assert providers == {"openai": True, "anthropic": True, "azure": None}


def test_ai_status_reports_providers_without_failing_on_them(live_worker, settings):  # noqa: F811
    settings.AI_FIELDS = {**settings.AI_FIELDS, "DEFAULT_PROVIDER": "openai", "PROVIDERS": {}}
    out = run("ai_status")
    assert "  openai: UNREACHABLE (auth: No API key configured" in out
    assert out.rstrip().endswith("Healthy.")


def test_ai_status_lists_an_open_circuit_without_failing(live_worker):  # noqa: F811
    from django_ai_fields.calling import breaker
    from django_ai_fields.providers import ProviderError

    failure = ProviderError("provider_unavailable", "HTTP 500")
    for _ in range(5):  # CIRCUIT_FAILURES
        breaker.record(breaker.allow("openai", "gpt-4o-mini", 30), failure)

    out = run("ai_status", "--no-providers")

    circuit = r"Circuits:\n  openai/gpt-4o-mini: open \(.*, opened 1 time\(s\), probe in \d+ s\)"
    assert re.search(circuit, out)
    assert out.rstrip().endswith("Healthy.")


# -- ai_usage -------------------------------------------------------------------------------------


def test_ai_usage_prints_a_table_per_tenant_and_model():
    make_usage(
        tenant="acme", model="gpt-4o-mini", input_tokens=100, output_tokens=10, cost_usd="0.5"
    )
    make_usage(
        tenant="acme", model="gpt-4o-mini", input_tokens=50, output_tokens=5, cost_usd="0.25"
    )
    make_usage(tenant="", model="claude-haiku-4-5", input_tokens=7, output_tokens=3, cost_usd="1")
    lines = run("ai_usage").splitlines()
    month = datetime.date.today().strftime("%Y-%m")
    assert lines[0] == f"AI usage in {month}:"
    assert lines[1].split() == [
        "Tenant",
        "Model",
        "Calls",
        "Input",
        "tokens",
        "Output",
        "tokens",
        "Cost",
        "(USD)",
    ]
    assert lines[3].split() == ["-", "claude-haiku-4-5", "1", "7", "3", "1.000000"]
    assert lines[4].split() == ["acme", "gpt-4o-mini", "2", "150", "15", "0.750000"]
    assert lines[5].split() == ["Total", "3", "157", "18", "1.750000"]


def test_ai_usage_filters_by_tenant_and_month():
    make_usage(tenant="acme", input_tokens=1)
    make_usage(tenant="globex", input_tokens=2)
    out = run("ai_usage", "--tenant", "globex")
    assert "acme" not in out
    assert "for tenant 'globex'" in out
    assert run("ai_usage", "--month", "2001-01").strip() == "No AI usage in 2001-01."


def test_ai_usage_counts_a_month_in_full():
    usage = make_usage(input_tokens=5, cost_usd=Decimal("0.1"))
    month = usage.created_at.strftime("%Y-%m")
    assert "Total" in run("ai_usage", "--month", month)


@pytest.mark.parametrize("month", ["2025-13", "January", "2025"])
def test_ai_usage_rejects_a_bad_month(month):
    assert "use YYYY-MM" in str(fails("ai_usage", "--month", month))
