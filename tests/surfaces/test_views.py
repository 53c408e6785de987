"""The JSON API: every endpoint, its permissions, CSRF, errors and tenant scoping."""

from __future__ import annotations

import datetime
import socket
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from django_ai_fields.jobs.sweep import sweep
from django_ai_fields.models import AIJob
from django_ai_fields.queues import get_queue
from tests.surfaces import (
    age_job,
    dead_queue,
    live_worker,  # noqa: F401  (fixture)
    make_usage,
    make_user,
    product_job,
    scoped,  # noqa: F401  (fixture)
    set_status,
    shops,  # noqa: F401  (fixture)
)
from tests.testapp.models import Lead, Product

pytestmark = pytest.mark.django_db

VIEW = ("django_ai_fields.view_aijob", "django_ai_fields.view_aiusage")
CHANGE = ("django_ai_fields.change_aijob",)


def url(name: str, *args: object) -> str:
    return reverse(f"django_ai_fields:{name}", args=args)


def client_for(user) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def viewer() -> Client:
    return client_for(make_user("viewer", *VIEW))


@pytest.fixture
def operator() -> Client:
    return client_for(make_user("operator", *VIEW, *CHANGE))


def error_of(response) -> dict:  # type: ignore[no-untyped-def]
    assert response["Content-Type"] == "application/json"
    return response.json()["error"]


# -- authentication, permissions, methods, CSRF ---------------------------------------


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("job-list", ()),
        ("job-detail", (1,)),
        ("health", ()),
        ("diagnostics", ()),
        ("analytics-usage", ()),
        ("analytics-performance", ()),
        ("row-status", ("testapp.lead", 1, "summary")),
    ],
)
def test_anonymous_callers_get_a_json_403(client, name, args):
    response = client.get(url(name, *args))
    assert response.status_code == 403
    assert error_of(response)["code"] == "not_authenticated"


@pytest.mark.parametrize(
    ("method", "name", "args"),
    [
        ("get", "job-list", ()),
        ("get", "job-detail", (1,)),
        ("get", "health", ()),
        ("get", "diagnostics", ()),
        ("get", "analytics-usage", ()),
        ("get", "analytics-performance", ()),
        ("post", "job-retry", (1,)),
        ("post", "job-cancel", (1,)),
        ("post", "job-bulk-retry", ()),
        ("post", "queue-pending", ()),
    ],
)
def test_a_staff_user_without_the_model_permission_gets_403(method, name, args):
    client = client_for(make_user("staff"))  # staff status alone grants nothing
    response = getattr(client, method)(url(name, *args))
    assert response.status_code == 403
    assert error_of(response)["code"] == "permission_denied"


@pytest.mark.parametrize("name", ["job-retry", "job-cancel"])
def test_actions_need_the_change_permission(viewer, name):
    job = AIJob.objects.create(status="failed")
    response = viewer.post(url(name, job.pk))
    assert response.status_code == 403
    assert error_of(response)["code"] == "permission_denied"
    assert AIJob.objects.get(pk=job.pk).status == "failed"


def test_a_wrong_method_is_405_with_allow(operator):
    response = operator.get(url("job-retry", 1))
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert error_of(response)["code"] == "method_not_allowed"
    assert operator.post(url("job-list")).status_code == 405


def test_posts_need_a_csrf_token():
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user("op", *CHANGE))
    job = AIJob.objects.create(status="queued")
    response = client.post(url("job-cancel", job.pk))
    assert response.status_code == 403
    assert error_of(response)["code"] == "csrf_failed"
    assert AIJob.objects.get(pk=job.pk).status == "queued"

    client.cookies["csrftoken"] = "a" * 32
    response = client.post(url("job-cancel", job.pk), HTTP_X_CSRFTOKEN="a" * 32)
    assert response.status_code == 200
    assert AIJob.objects.get(pk=job.pk).status == "cancelled"


# -- jobs list and detail ----------------------------------------------------------------


def test_the_job_list_filters_and_paginates(viewer):
    leads = [Lead.objects.create(name=f"L{i}", notes="n") for i in range(3)]  # 9 jobs
    failed = AIJob.objects.filter(object_id=str(leads[0].pk), field_name="heat").get()
    set_status(failed, "failed", error_code="auth", model="gpt-x")

    body = viewer.get(url("job-list"), {"page_size": 4}).json()
    assert (body["count"], body["pages"], body["page"], len(body["results"])) == (9, 3, 1, 4)
    assert body["results"][0]["id"] > body["results"][1]["id"]  # newest first
    last = viewer.get(url("job-list"), {"page_size": 4, "page": 3}).json()
    assert len(last["results"]) == 1

    only = viewer.get(url("job-list"), {"status": "failed"}).json()["results"]
    assert [job["id"] for job in only] == [failed.pk]
    assert only[0]["target"] == {"model": "testapp.lead", "id": str(leads[0].pk)}
    assert viewer.get(url("job-list"), {"field": "profile"}).json()["count"] == 3
    assert viewer.get(url("job-list"), {"model": "gpt-x"}).json()["count"] == 1
    assert viewer.get(url("job-list"), {"error_code": "auth"}).json()["count"] == 1
    assert viewer.get(url("job-list"), {"status": "pending,failed"}).json()["count"] == 9
    target = {"target": "testapp.lead", "object_id": leads[1].pk}
    assert viewer.get(url("job-list"), target).json()["count"] == 3
    assert viewer.get(url("job-list"), {"tenant": "nobody"}).json()["count"] == 0


@pytest.mark.parametrize(
    "params",
    [{"status": "exploded"}, {"page": "x"}, {"page": 99}, {"page_size": 0}, {"error_code": "?"}],
)
def test_bad_list_parameters_are_400(viewer, params):
    Lead.objects.create(name="L")
    response = viewer.get(url("job-list"), params)
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_parameter"


def test_job_detail_includes_prompt_output_and_usage_rows(viewer):
    lead = Lead.objects.create(name="Ada")
    job = AIJob.objects.filter(object_id=str(lead.pk), field_name="summary").get()
    set_status(job, "succeeded", prompt="Summarize Ada", output="A summary")
    make_usage(job=job, input_tokens=12, output_tokens=5, cost_usd=Decimal("0.000123"))
    body = viewer.get(url("job-detail", job.pk)).json()
    assert body["prompt"] == "Summarize Ada"
    assert body["output"] == "A summary"
    assert [(u["input_tokens"], u["output_tokens"]) for u in body["usage"]] == [(12, 5)]
    assert body["usage"][0]["cost_usd"] == "0.000123"


def test_an_unknown_job_is_a_json_404(viewer):
    response = viewer.get(url("job-detail", 999999))
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


# -- retry, cancel, bulk retry, queue pending ---------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_retry_runs_a_failed_job_again(operator, fake_provider, worker):
    fake_provider.fail_all_with = 401
    product = Product.objects.create(title="Lamp", price=5)
    worker.drain()
    job = product_job(product)
    assert job.status == "failed"

    fake_provider.fail_all_with = None
    fake_provider.reply_text = "Light up"
    response = operator.post(url("job-retry", job.pk))
    assert response.status_code == 200
    assert response.json()["status"] == "queued"  # pending, then enqueued on commit
    worker.drain()
    job.refresh_from_db()
    assert (job.status, job.attempts, job.error_code) == ("succeeded", 1, "")
    product.refresh_from_db()
    assert product.tagline == "Light up"


def test_retry_refuses_a_job_that_did_not_fail(operator):
    job = AIJob.objects.create(status="succeeded")
    response = operator.post(url("job-retry", job.pk))
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_state"


def test_retry_never_duplicates_an_open_job(operator):
    product = Product.objects.create(title="Lamp")
    failed = set_status(product_job(product), "failed")
    product.title = "Lamp 2"
    product.save()  # a new open (pending) job for the same row and field
    response = operator.post(url("job-retry", failed.pk))
    assert response.status_code == 400
    assert error_of(response)["code"] == "open_job_exists"
    assert AIJob.objects.get(pk=failed.pk).status == "failed"
    assert AIJob.objects.filter(status="pending").count() == 1


@pytest.mark.django_db(transaction=True)
def test_cancel_stops_a_queued_job_and_the_worker_skips_it(operator, fake_provider, worker):
    product = Product.objects.create(title="Lamp")
    job = product_job(product)
    assert job.status == "queued"
    response = operator.post(url("job-cancel", job.pk))
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    worker.drain()
    job.refresh_from_db()
    assert (job.status, job.run_token, job.attempts) == ("cancelled", "", 0)
    assert fake_provider.calls == 0


def test_cancel_refuses_a_running_job(operator):
    job = AIJob.objects.create(status="running", run_token="abc")
    response = operator.post(url("job-cancel", job.pk))
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_state"
    assert AIJob.objects.get(pk=job.pk).status == "running"


def test_bulk_retry_reports_each_id(operator):
    failed = AIJob.objects.create(status="failed")
    cancelled = AIJob.objects.create(status="cancelled")
    done = AIJob.objects.create(status="succeeded")
    ids = [failed.pk, cancelled.pk, done.pk, 999999]
    response = operator.post(url("job-bulk-retry"), {"ids": ids}, content_type="application/json")
    assert response.status_code == 200
    assert response.json() == {
        "retried": [failed.pk, cancelled.pk],
        "skipped": [
            {"id": done.pk, "reason": "invalid_state"},
            {"id": 999999, "reason": "not_found"},
        ],
    }
    assert set(AIJob.objects.values_list("status", flat=True)) == {"pending", "succeeded"}


def test_bulk_retry_accepts_form_fields(operator):
    failed = AIJob.objects.create(status="failed")
    response = operator.post(url("job-bulk-retry"), {"ids": [str(failed.pk)]})
    assert response.json()["retried"] == [failed.pk]


@pytest.mark.parametrize(
    "body", ['{"ids": []}', '{"ids": ["x"]}', '{"nope": 1}', "[1, 2]", "{broken"]
)
def test_bulk_retry_rejects_a_bad_body(operator, body):
    response = operator.post(url("job-bulk-retry"), body, content_type="application/json")
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_body"


def test_queue_pending_enqueues_jobs_left_pending(operator):
    Product.objects.create(title="Lamp")  # no commit in this test: the job stays pending
    job = AIJob.objects.get()
    assert job.status == "pending"
    response = operator.post(url("queue-pending"))
    assert response.status_code == 200
    assert response.json()["enqueued"] == 1
    job.refresh_from_db()
    assert job.status == "queued"
    assert get_queue().fetch_job(job.rq_job_id) is not None


# -- one row's status ---------------------------------------------------------------------


def test_row_status_returns_the_latest_job_and_badge_html(viewer):
    lead = Lead.objects.create(name="Ada", notes="Wants a demo")
    body = viewer.get(url("row-status", "testapp.lead", lead.pk, "heat")).json()
    assert body["status"] == "pending"
    assert body["job"]["field"] == "heat"
    assert "ai-status--pending" in body["html"]
    assert "data-status-url" in body["html"]


def test_row_status_is_allowed_with_view_permission_on_the_row_model():
    lead = Lead.objects.create(name="Ada")
    client = client_for(make_user("reader", "testapp.view_lead", staff=False))
    response = client.get(url("row-status", "testapp.lead", lead.pk, "summary"))
    assert response.status_code == 200
    other = client_for(make_user("stranger", staff=False))
    response = other.get(url("row-status", "testapp.lead", lead.pk, "summary"))
    assert response.status_code == 403


@pytest.mark.parametrize(
    "args",
    [
        ("testapp.lead", 999999, "summary"),
        ("testapp.lead", "not-a-number", "summary"),
        ("testapp.lead", 1, "name"),
        ("testapp.nothing", 1, "summary"),
        ("nonsense", 1, "summary"),
    ],
)
def test_row_status_404s(viewer, args):
    Lead.objects.create(name="Ada")
    response = viewer.get(url("row-status", *args))
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


# -- worker health and diagnostics -----------------------------------------------------------


def test_health_without_a_worker_is_unhealthy(viewer):
    body = viewer.get(url("health")).json()
    assert body["healthy"] is False
    assert body["queue"]["ok"] is True
    assert body["queue"]["workers"] == []


def test_health_lists_live_workers_and_queue_depth(viewer, live_worker):  # noqa: F811
    Product.objects.create(title="Lamp")
    sweep(all_pending=True)
    body = viewer.get(url("health")).json()
    assert body["healthy"] is True
    assert [w["name"] for w in body["queue"]["workers"]] == [live_worker.name]
    assert body["queue"]["workers"][0]["queues"] == ["default"]
    assert body["queue"]["depth"] == 1


def test_health_reports_redis_down(viewer, monkeypatch):
    monkeypatch.setattr("django_ai_fields.queues.get_queue", lambda *a: dead_queue())
    body = viewer.get(url("health")).json()
    assert body["healthy"] is False
    assert body["queue"]["ok"] is False
    assert body["queue"]["error"].startswith("ConnectionError")


def test_diagnostics_lists_stuck_jobs(viewer):
    running = AIJob.objects.create(status="running")
    age_job(running, started_at=datetime.timedelta(hours=1))
    pending = AIJob.objects.create(status="pending")
    age_job(pending, updated_at=datetime.timedelta(hours=1))
    AIJob.objects.create(status="running")  # started just now: fine
    body = viewer.get(url("diagnostics"), {"providers": "0"}).json()
    assert body["stuck_jobs"]["count"] == 2
    assert {j["id"] for j in body["stuck_jobs"]["jobs"]} == {running.pk, pending.pk}
    assert body["providers"] is None


def test_diagnostics_checks_provider_reachability(viewer, fake_provider, settings):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]
    providers = settings.AI_FIELDS["PROVIDERS"]
    dead = {**providers["anthropic"], "BASE_URL": f"http://127.0.0.1:{dead_port}"}
    settings.AI_FIELDS = {
        **settings.AI_FIELDS,
        "PROVIDERS": {**providers, "anthropic": dead, "offline": {}},
    }
    body = viewer.get(url("diagnostics")).json()
    state = {p["name"]: p["ok"] for p in body["providers"]}
    assert state == {"openai": True, "anthropic": False, "azure": None, "offline": True}
    assert [r.path for r in fake_provider.requests] == ["/v1/models"]  # the openai probe
    detail = {p["name"]: p["detail"] for p in body["providers"]}
    assert detail["anthropic"].startswith("provider_unavailable")


def test_diagnostics_reports_a_missing_key(viewer, settings):
    settings.AI_FIELDS = {**settings.AI_FIELDS, "DEFAULT_PROVIDER": "openai", "PROVIDERS": {}}
    (openai,) = viewer.get(url("diagnostics")).json()["providers"]
    assert openai["ok"] is False
    assert openai["detail"].startswith("auth: No API key")


# -- analytics ---------------------------------------------------------------------------------


def test_usage_analytics_groups_calls_tokens_and_cost(viewer):
    make_usage(tenant="acme", model="m1", input_tokens=10, output_tokens=5, cost_usd="0.5")
    make_usage(tenant="acme", model="m1", input_tokens=20, output_tokens=5, cost_usd="0.25")
    make_usage(tenant="globex", model="m2", input_tokens=1, output_tokens=1, cost_usd="1")
    make_usage(days_ago=60, tenant="acme", model="m1", input_tokens=999)  # outside the window
    body = viewer.get(url("analytics-usage"), {"group_by": "tenant,model"}).json()
    rows = {(r["tenant"], r["model"]): r for r in body["rows"]}
    assert set(rows) == {("acme", "m1"), ("globex", "m2")}
    acme = rows[("acme", "m1")]
    assert (acme["calls"], acme["input_tokens"], acme["tokens"]) == (2, 30, 40)
    assert Decimal(acme["cost_usd"]) == Decimal("0.75")
    assert body["totals"]["calls"] == 3
    assert Decimal(body["totals"]["cost_usd"]) == Decimal("1.75")


def test_usage_analytics_by_day_and_window(viewer):
    make_usage(days_ago=0, input_tokens=1)
    make_usage(days_ago=3, input_tokens=2)
    today = datetime.date.today()
    since = (today - datetime.timedelta(days=5)).isoformat()
    body = viewer.get(url("analytics-usage"), {"group_by": "day", "since": since}).json()
    assert [r["input_tokens"] for r in body["rows"]] == [2, 1]
    assert body["since"] == since
    assert len(body["rows"][0]["day"]) == 10


@pytest.mark.parametrize(
    "params",
    [
        {"group_by": "colour"},
        {"since": "yesterday"},
        {"since": "2025-02-01", "until": "2025-01-01"},
    ],
)
def test_usage_analytics_rejects_bad_parameters(viewer, params):
    response = viewer.get(url("analytics-usage"), params)
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_parameter"


def test_performance_reports_latency_percentiles_and_error_rates(viewer):
    for ms in range(1, 101):
        make_usage(provider="openai", model="m1", duration_ms=ms)
    make_usage(provider="openai", model="m1", success=False, error_code="rate_limited")
    make_usage(provider="openai", model="m1", success=False, error_code="rate_limited")
    make_usage(provider="openai", model="m1", cache_hit=True, duration_ms=0)
    AIJob.objects.create(status="failed", error_code="auth")
    AIJob.objects.create(status="succeeded")
    body = viewer.get(url("analytics-performance")).json()
    (latency,) = body["latency"]
    assert latency["calls"] == 100
    # Approximate (the roll-up's duration histogram): within 10% of nearest-rank.
    assert abs(latency["p50_ms"] - 50) <= 5 and abs(latency["p95_ms"] - 95) <= 9.5
    assert latency["max_ms"] == 100
    assert body["calls"]["failed"] == 2
    assert body["calls"]["by_code"] == {"rate_limited": 2}
    assert body["calls"]["error_rate"] == round(2 / 103, 4)
    assert body["jobs"] == {
        "finished": 2,
        "failed": 1,
        "failure_rate": 0.5,
        "failed_by_code": {"auth": 1},
    }


# -- tenant scoping ------------------------------------------------------------------------------


@pytest.fixture
def acme(scoped) -> Client:  # noqa: F811
    return client_for(make_user("acme-ann", *VIEW, *CHANGE))


def test_a_tenant_lists_only_its_own_jobs(shops, acme):  # noqa: F811
    body = acme.get(url("job-list")).json()
    assert [job["tenant"] for job in body["results"]] == ["acme"]
    assert acme.get(url("job-list"), {"tenant": "globex"}).json()["count"] == 0


def test_another_tenants_job_is_404_for_every_job_endpoint(shops, acme):  # noqa: F811
    theirs = set_status(product_job(shops["globex"]), "failed")
    assert acme.get(url("job-detail", theirs.pk)).status_code == 404
    assert acme.post(url("job-retry", theirs.pk)).status_code == 404
    assert acme.post(url("job-cancel", theirs.pk)).status_code == 404
    bulk = acme.post(url("job-bulk-retry"), {"ids": [theirs.pk]}, content_type="application/json")
    assert bulk.json() == {"retried": [], "skipped": [{"id": theirs.pk, "reason": "not_found"}]}
    assert AIJob.objects.get(pk=theirs.pk).status == "failed"
    row = acme.get(url("row-status", "testapp.product", shops["globex"].pk, "tagline"))
    assert row.status_code == 404
    ours = acme.get(url("row-status", "testapp.product", shops["acme"].pk, "tagline"))
    assert ours.json()["job"]["tenant"] == "acme"


def test_queue_pending_touches_only_the_callers_tenant(shops, acme):  # noqa: F811
    response = acme.post(url("queue-pending"))
    assert response.json() == {"enqueued": 1, "unreachable": 0}
    assert product_job(shops["acme"]).status == "queued"
    assert product_job(shops["globex"]).status == "pending"


def test_aggregates_and_diagnostics_are_scoped(shops, acme):  # noqa: F811
    make_usage(tenant="acme", input_tokens=1)
    make_usage(tenant="globex", input_tokens=100)
    usage = acme.get(url("analytics-usage"), {"group_by": "tenant"}).json()
    assert [r["tenant"] for r in usage["rows"]] == ["acme"]
    assert usage["totals"]["input_tokens"] == 1
    perf = acme.get(url("analytics-performance")).json()
    assert perf["calls"]["calls"] == 1
    for product in shops.values():
        age_job(product_job(product), updated_at=datetime.timedelta(hours=1))
    stuck = acme.get(url("diagnostics"), {"providers": "0"}).json()["stuck_jobs"]
    assert [j["tenant"] for j in stuck["jobs"]] == ["acme"]


def test_a_user_without_a_tenant_sees_nothing_unless_superuser(shops, scoped):  # noqa: F811
    lost = client_for(make_user("nobody", *VIEW))
    response = lost.get(url("job-list"))
    assert response.status_code == 403
    assert error_of(response)["code"] == "no_tenant"
    assert lost.get(url("analytics-usage")).status_code == 403
    root = client_for(make_user("root", superuser=True))
    assert root.get(url("job-list")).json()["count"] == 2
