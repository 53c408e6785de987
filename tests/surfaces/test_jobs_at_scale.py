"""Issue #20: the AIJob changelist does not count or DISTINCT the whole job table
(a capped count, filter choices from small tables)."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from django_ai_fields.admin import job_changelist
from django_ai_fields.models import AIJob, Quota, TenantPolicy
from django_ai_fields.money import usage_rollup
from tests.surfaces import TENANT_FOR_USER, make_user

pytestmark = pytest.mark.django_db

JOBS = "/admin/django_ai_fields/aijob/"
JOB_TABLE = '"django_ai_fields_aijob"'


@pytest.fixture
def root() -> Client:
    client = Client()
    client.force_login(make_user("root", superuser=True))
    return client


def make_jobs(count: int, tenant: str = "acme", model: str = "gpt-4o-mini") -> None:
    AIJob.objects.bulk_create(
        AIJob(status="succeeded", tenant=tenant, model=model, function="f", input_hash=str(n))
        for n in range(count)
    )


def scans_of_the_job_table(queries: CaptureQueriesContext) -> list[str]:
    """Statements that count or DISTINCT over the job table without a LIMIT."""
    found = []
    for query in queries.captured_queries:
        sql = query["sql"]
        if JOB_TABLE not in sql or "LIMIT" in sql:
            continue
        if re.search(r"COUNT\(|DISTINCT", sql):
            found.append(sql)
    return found


def calls_of(tenant: str, model: str) -> None:
    usage_rollup.log_call(tenant=tenant, provider="openai", model=model)


def test_the_list_neither_counts_nor_distincts_the_job_table(root):
    make_jobs(3)
    with CaptureQueriesContext(connection) as small:
        root.get(JOBS)
    make_jobs(40, tenant="globex", model="claude-haiku-4-5")
    with CaptureQueriesContext(connection) as large:
        html = root.get(JOBS).content.decode()
    assert len(large) == len(small)
    assert scans_of_the_job_table(large) == []
    assert "43 AI jobs" in html  # below the cap: the exact count


def test_the_count_stops_at_the_cap(root, monkeypatch):
    monkeypatch.setattr(job_changelist, "COUNT_CAP", 10)
    make_jobs(25)
    response = root.get(JOBS, {"tenant": "acme"})
    assert response.context["cl"].result_count == 10
    make_jobs(4, tenant="globex")
    response = root.get(JOBS, {"tenant": "globex"})
    assert response.context["cl"].result_count == 4


def test_filter_choices_come_from_the_roll_up_quotas_and_policies(root):
    calls_of("acme", "gpt-4o-mini")
    calls_of("globex", "claude-haiku-4-5")
    Quota.objects.create(tenant="initech", kind="requests", period="day", limit=5)
    TenantPolicy.objects.create(tenant="umbrella")
    make_jobs(2, tenant="acme")
    make_jobs(3, tenant="globex", model="claude-haiku-4-5")
    with CaptureQueriesContext(connection) as queries:
        html = root.get(JOBS).content.decode()
    for tenant in ("acme", "globex", "initech", "umbrella"):
        assert f'href="?tenant={tenant}"' in html
    for model in ("gpt-4o-mini", "claude-haiku-4-5"):
        assert f'href="?model={model}"' in html
    assert scans_of_the_job_table(queries) == []
    response = root.get(JOBS, {"tenant": "globex"})
    assert {job.tenant for job in response.context["cl"].result_list} == {"globex"}
    assert response.context["cl"].result_count == 3


def test_a_value_from_the_url_is_offered_and_selected(root):
    make_jobs(2, tenant="hooli", model="m-rare")  # no calls, quota or policy
    html = root.get(JOBS, {"tenant": "hooli", "model": "m-rare"}).content.decode()
    selected = re.findall(r'<li class="selected">\s*<a href="([^"]*)"', html)
    assert any("tenant=hooli" in link for link in selected)
    assert any("model=m-rare" in link for link in selected)
    assert "2 AI jobs" in html


def test_a_tenant_bound_user_sees_only_its_tenants_choices(settings):
    settings.AI_FIELDS = {**settings.AI_FIELDS, "TENANT_FOR_USER": TENANT_FOR_USER}
    calls_of("acme", "m-acme")
    calls_of("globex", "m-globex")
    Quota.objects.create(tenant="globex", kind="requests", period="day", limit=5)
    make_jobs(1, tenant="acme")
    client = Client()
    client.force_login(make_user("acme-ann", "django_ai_fields.view_aijob"))
    html = client.get(JOBS).content.decode()
    assert 'href="?model=m-acme"' in html
    assert "globex" not in html and "m-globex" not in html


@pytest.mark.skipif(connection.vendor != "postgresql", reason="pg_class.reltuples")
def test_an_unfiltered_list_past_the_cap_shows_the_estimate(root, monkeypatch):
    monkeypatch.setattr(job_changelist, "COUNT_CAP", 10)
    make_jobs(60)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE django_ai_fields_aijob")
    assert root.get(JOBS).context["cl"].result_count == 60
    assert root.get(JOBS, {"tenant": "acme"}).context["cl"].result_count == 10
