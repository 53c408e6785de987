"""The admin: job list and actions, usage totals and export, quotas, credentials,
AIFieldsAdminMixin, and that nothing is reachable without permissions."""

from __future__ import annotations

import re

import pytest
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_ai_fields.models import AIJob, ProviderCredential, Quota, QuotaUsage
from django_ai_fields.money.quotas import period_start
from tests.surfaces import (
    make_usage,
    make_user,
    product_job,
    scoped,  # noqa: F401  (fixture)
    set_status,
    shops,  # noqa: F401  (fixture)
)
from tests.testapp.models import Lead, Product

pytestmark = pytest.mark.django_db

JOBS = "/admin/django_ai_fields/aijob/"
USAGE = "/admin/django_ai_fields/aiusage/"
QUOTAS = "/admin/django_ai_fields/quota/"
CREDENTIALS = "/admin/django_ai_fields/providercredential/"
LEADS = "/admin/testapp/lead/"


def client_for(user) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def root() -> Client:
    return client_for(make_user("root", superuser=True))


def action(client: Client, path: str, name: str, objects: list, **extra: str) -> list[str]:  # type: ignore[type-arg]
    """POST an admin action; returns the messages shown."""
    response = client.post(
        path,
        {"action": name, "_selected_action": [obj.pk for obj in objects], **extra},
        follow=True,
    )
    assert response.status_code == 200
    return [str(m) for m in get_messages(response.wsgi_request)]


def action_names(html: str) -> set[str]:
    select = re.search(r'<select name="action".*?</select>', html, re.S)
    return set(re.findall(r'<option value="(\w+)"', select.group(0))) if select else set()


# -- AIJob ---------------------------------------------------------------------------------


def test_the_job_list_shows_status_target_link_tenant_model_and_cost(root):
    lead = Lead.objects.create(name="Ada", notes="n")
    job = AIJob.objects.get(object_id=str(lead.pk), field_name="heat")
    set_status(job, "failed", model="gpt-4o-mini", cost_usd="0.001234", error_code="auth")
    html = root.get(JOBS).content.decode()
    assert f'<a href="/admin/testapp/lead/{lead.pk}/change/">testapp.lead #{lead.pk}</a>' in html
    assert 'class="ai-status ai-status--failed">Failed</span>' in html
    assert "0.001234" in html
    filtered = root.get(JOBS, {"status__exact": "failed"}).content.decode()
    assert filtered.count('class="action-select"') == 1
    by_code = root.get(JOBS, {"error_code__exact": "auth", "model__exact": "gpt-4o-mini"})
    assert by_code.content.decode().count('class="action-select"') == 1


def test_a_target_without_an_admin_page_is_plain_text(root):
    product = Product.objects.create(title="Lamp")  # Product has no ModelAdmin
    html = root.get(JOBS).content.decode()
    assert f"testapp.product #{product.pk}" in html
    assert "/admin/testapp/product/" not in html


def test_the_job_list_searches(root):
    Lead.objects.create(name="Ada", notes="n")
    job = AIJob.objects.filter(field_name="profile").get()
    set_status(job, "failed", error="the schema said no")
    html = root.get(JOBS, {"q": "schema said"}).content.decode()
    assert html.count('class="action-select"') == 1


@pytest.mark.django_db(transaction=True)
def test_the_retry_action_runs_failed_jobs_again(root, fake_provider, worker):
    fake_provider.fail_all_with = 401
    product = Product.objects.create(title="Lamp", price=5)
    worker.drain()
    failed = product_job(product)
    assert failed.status == "failed"
    done = AIJob.objects.create(status="succeeded")
    fake_provider.fail_all_with = None
    fake_provider.reply_text = "Bright"

    messages = action(root, JOBS, "retry_jobs", [failed, done])
    assert "1 job(s) queued for a new attempt." in messages
    assert any(f"Skipped job(s) {done.pk}" in m for m in messages)
    worker.drain()
    product.refresh_from_db()
    assert product.tagline == "Bright"
    assert product_job(product).pk == failed.pk  # the same job, a new attempt


def test_the_retry_action_never_duplicates_an_open_job(root):
    product = Product.objects.create(title="Lamp")
    failed = set_status(product_job(product), "failed")
    product.title = "Lamp 2"
    product.save()
    messages = action(root, JOBS, "retry_jobs", [failed])
    assert any("another job for the same row and field is open" in m for m in messages)
    assert AIJob.objects.get(pk=failed.pk).status == "failed"


def test_the_cancel_action_cancels_pending_and_queued_jobs_only(root):
    pending = AIJob.objects.create(status="pending")
    queued = AIJob.objects.create(status="queued", run_token="t")
    running = AIJob.objects.create(status="running", run_token="r")
    messages = action(root, JOBS, "cancel_jobs", [pending, queued, running])
    assert "2 job(s) cancelled." in messages
    statuses = dict(AIJob.objects.values_list("pk", "status"))
    assert statuses == {pending.pk: "cancelled", queued.pk: "cancelled", running.pk: "running"}
    assert AIJob.objects.get(pk=queued.pk).run_token == ""


def test_the_job_page_is_read_only_and_shows_prompt_output_error_and_usage(root):
    job = AIJob.objects.create(
        status="failed",
        phase="PARSE",
        progress=70,
        prompt="Summarize <Ada>",
        output={"industry": "fintech"},
        error_code="invalid_output",
        error="employees is required",
    )
    make_usage(job=job, input_tokens=321, output_tokens=45)
    html = root.get(f"{JOBS}{job.pk}/change/").content.decode()
    assert "<pre>Summarize &lt;Ada&gt;</pre>" in html
    assert "&quot;industry&quot;: &quot;fintech&quot;" in html
    assert "employees is required" in html
    assert "PARSE" in html
    assert "321" in html and "45" in html
    assert "Rendered prompt:" in html and "Output:" in html and "Step log:" in html
    assert 'name="_save"' not in html
    assert 'name="status"' not in html
    response = root.post(f"{JOBS}{job.pk}/change/", {"status": "succeeded"})
    assert response.status_code == 403
    assert AIJob.objects.get(pk=job.pk).status == "failed"


def test_jobs_cannot_be_added_in_the_admin(root):
    assert root.get(f"{JOBS}add/").status_code == 403


def test_a_viewer_sees_jobs_but_no_actions():
    AIJob.objects.create(status="failed")
    client = client_for(make_user("viewer", "django_ai_fields.view_aijob"))
    response = client.get(JOBS)
    assert response.status_code == 200
    assert not {"retry_jobs", "cancel_jobs"} & action_names(response.content.decode())
    job = AIJob.objects.get()
    messages = action(client, JOBS, "retry_jobs", [job])
    assert messages in ([], ["No action selected."])  # the action does not exist for them
    assert AIJob.objects.get().status == "failed"


def test_staff_without_view_permission_gets_403_everywhere():
    client = client_for(make_user("staff"))
    job = AIJob.objects.create(status="failed")
    for path in (JOBS, f"{JOBS}{job.pk}/change/", USAGE, f"{USAGE}export/", QUOTAS, CREDENTIALS):
        assert client.get(path).status_code == 403, path
    assert (
        client.post(JOBS, {"action": "retry_jobs", "_selected_action": [job.pk]}).status_code == 403
    )
    assert AIJob.objects.get().status == "failed"


# -- AIUsage ---------------------------------------------------------------------------------


def test_usage_totals_follow_the_current_filter(root):
    make_usage(tenant="acme", input_tokens=10, output_tokens=5, cost_usd="0.25")
    make_usage(tenant="acme", input_tokens=20, output_tokens=5, cost_usd="0.50")
    make_usage(tenant="globex", input_tokens=1000, output_tokens=1000, cost_usd="9")
    html = root.get(USAGE, {"tenant": "acme"}).content.decode()
    totals = re.search(r'class="ai-usage-totals">(.*?)</p>', html, re.S).group(1)
    assert "2 calls" in totals
    assert "40 tokens (30 in, 10 out)" in totals
    assert "0.75" in totals


def test_usage_is_read_only(root):
    usage = make_usage()
    assert root.get(f"{USAGE}add/").status_code == 403
    html = root.get(f"{USAGE}{usage.pk}/change/").content.decode()
    assert 'name="_save"' not in html
    assert 'value="delete_selected"' not in root.get(USAGE).content.decode()


def test_usage_has_a_date_hierarchy(root):
    make_usage(days_ago=0)
    year = timezone.now().year
    html = root.get(USAGE).content.decode()
    assert f"?created_at__year={year}" in html


def test_usage_exports_the_filtered_rows_as_csv(root):
    make_usage(tenant="acme", model="m-acme", input_tokens=11)
    make_usage(tenant="globex", model="m-globex", input_tokens=22)
    fields = ["tenant", "model", "input_tokens"]
    data = {"format": "0", "resource": "0", **{f"aiusageresource_{f}": "on" for f in fields}}
    response = root.post(f"{USAGE}export/?tenant=acme", data)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    lines = response.content.decode().strip().splitlines()
    assert lines == ["tenant,model,input_tokens", "acme,m-acme,11"]


def test_export_needs_the_view_permission():
    client = client_for(make_user("staff"))
    response = client.post(f"{USAGE}export/", {"format": "0", "resource": "0"})
    assert response.status_code == 403


# -- Quota -------------------------------------------------------------------------------------


def test_quotas_show_the_current_periods_usage(root):
    Quota.objects.create(tenant="acme", kind="requests", period="day", limit=100)
    Quota.objects.create(tenant="acme", kind="cost_usd", period="month", limit=5)
    Quota.objects.create(tenant="", kind="tokens", period="month", limit=10)
    QuotaUsage.objects.create(
        tenant="acme", kind="requests", period="day", period_start=period_start("day"), used=42
    )
    QuotaUsage.objects.create(
        tenant="acme",
        kind="cost_usd",
        period="month",
        period_start=period_start("month"),
        used=1_250_000,
    )
    old = period_start("day") - timezone.timedelta(days=1)
    QuotaUsage.objects.create(
        tenant="acme", kind="requests", period="day", period_start=old, used=99
    )
    with CaptureQueriesContext(connection) as queries:
        html = root.get(QUOTAS).content.decode()
    cells = re.findall(r'<td class="field-used_now">(.*?)</td>', html)
    texts = [re.sub(r"<[^>]+>", "", cell).strip() for cell in cells]
    assert sorted(texts) == sorted(["42 / 100", "1.250000 / 5.000000", "per tenant"])
    # Each limited quota's use as a bar: 42 of 100 requests, 1.25 of 5 USD.
    assert 'class="ai-quota-fill" style="width:42.0%"' in html
    assert 'class="ai-quota-fill" style="width:25.0%"' in html
    assert "(default for all tenants)" in html
    quota_queries = [q for q in queries.captured_queries if "quotausage" in q["sql"]]
    assert len(quota_queries) == 1  # a subquery, not one query per row


def test_quotas_import_and_export_as_csv(root):
    Quota.objects.create(tenant="acme", kind="requests", period="day", limit=100)
    csv = (
        "tenant,kind,period,limit,is_unlimited\n"
        "acme,requests,day,250,0\n"
        "globex,tokens,month,5000,0\n"
    )
    upload = {"format": "0", "resource": "0"}
    upload["import_file"] = SimpleUploadedFile("quotas.csv", csv.encode(), "text/csv")
    response = root.post(f"{QUOTAS}import/", upload)
    assert response.status_code == 200
    html = response.content.decode()
    confirm = {
        name: value
        for name, value in re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', html)
    }
    assert "import_file_name" in confirm, html
    response = root.post(f"{QUOTAS}process_import/", confirm, follow=True)
    assert response.status_code == 200
    limits = {(q.tenant, q.kind): q.limit for q in Quota.objects.all()}
    assert limits == {("acme", "requests"): 250, ("globex", "tokens"): 5000}

    fields = ["tenant", "kind", "limit"]
    data = {"format": "0", "resource": "0", **{f"quotaresource_{f}": "on" for f in fields}}
    exported = root.post(f"{QUOTAS}export/", data).content.decode().strip().splitlines()
    assert exported[0] == "tenant,kind,limit"
    assert "globex,tokens,5000.000000" in exported


def test_an_invalid_quota_import_changes_nothing(root):
    csv = "tenant,kind,period,limit,is_unlimited\nacme,bananas,day,1,0\n"
    upload = {"format": "0", "resource": "0"}
    upload["import_file"] = SimpleUploadedFile("q.csv", csv.encode(), "text/csv")
    response = root.post(f"{QUOTAS}import/", upload)
    assert "import_file_name" not in response.content.decode()
    assert Quota.objects.count() == 0


# -- ProviderCredential -------------------------------------------------------------------------


def test_a_credential_key_is_write_only_and_masked(root):
    response = root.post(
        f"{CREDENTIALS}add/",
        {"tenant": "acme", "provider": "openai", "new_api_key": "sk-secret-123", "base_url": ""},
    )
    assert response.status_code == 302, response.content.decode()
    credential = ProviderCredential.objects.get()
    with connection.cursor() as cursor:  # the column as stored, not decrypted by the field
        cursor.execute("SELECT api_key FROM django_ai_fields_providercredential")
        (stored,) = cursor.fetchone()
    assert "sk-secret-123" not in stored
    assert credential.get_api_key() == "sk-secret-123"

    page = root.get(f"{CREDENTIALS}{credential.pk}/change/").content.decode()
    listing = root.get(CREDENTIALS).content.decode()
    for html in (page, listing):
        assert "sk-secret-123" not in html
        assert stored not in html  # not even the ciphertext
    assert 'type="password"' in page
    assert "••••••••" in listing


def test_saving_a_credential_with_a_blank_key_keeps_the_key(root):
    credential = ProviderCredential(tenant="acme", provider="openai")
    credential.set_api_key("sk-keep-me")
    credential.save()
    path = f"{CREDENTIALS}{credential.pk}/change/"
    form = {"tenant": "acme", "provider": "openai", "new_api_key": ""}
    response = root.post(path, {**form, "default_model": "gpt-4o"})
    assert response.status_code == 302
    credential.refresh_from_db()
    assert (credential.get_api_key(), credential.default_model) == ("sk-keep-me", "gpt-4o")
    root.post(path, {**form, "new_api_key": "sk-new"})
    credential.refresh_from_db()
    assert credential.get_api_key() == "sk-new"
    root.post(path, {**form, "clear_api_key": "on"})
    credential.refresh_from_db()
    assert credential.api_key == ""


# -- AIFieldsAdminMixin ----------------------------------------------------------------------------


def test_the_regenerate_actions_are_offered_to_users_who_may_change(root):
    Lead.objects.create(name="Ada")
    names = action_names(root.get(LEADS).content.decode())
    assert {
        "regenerate_ai_fields",
        "regenerate_ai_field_summary",
        "regenerate_ai_field_heat",
        "regenerate_ai_field_profile",
    } <= names


def test_regenerate_all_fields_requests_fresh_jobs(root):
    leads = [Lead.objects.create(name=f"L{i}", notes="n") for i in range(2)]
    AIJob.objects.update(status="succeeded")
    messages = action(root, LEADS, "regenerate_ai_fields", leads, confirm="yes")
    assert "6 AI jobs requested; the values update when they have run." in messages
    fresh = AIJob.objects.filter(triggered_by="admin")
    assert fresh.count() == 6
    assert all(job.force for job in fresh)  # an explicit regenerate bypasses the cache


def test_regenerate_one_field(root):
    lead = Lead.objects.create(name="Ada", notes="n")
    AIJob.objects.update(status="succeeded")
    action(root, LEADS, "regenerate_ai_field_heat", [lead], confirm="yes")
    assert list(AIJob.objects.filter(triggered_by="admin").values_list("field_name")) == [("heat",)]


@pytest.mark.django_db(transaction=True)
def test_the_regenerate_action_ends_with_fresh_values(root, fake_provider, worker):
    lead = Lead.objects.create(name="Ada", company="Acme")
    worker.drain()
    fake_provider.reply_text = "A fresh summary"
    action(root, LEADS, "regenerate_ai_field_summary", [lead], confirm="yes")
    worker.drain()
    lead.refresh_from_db()
    assert lead.summary == "A fresh summary"


def test_without_change_permission_there_is_no_regenerate_action():
    lead = Lead.objects.create(name="Ada", notes="n")
    AIJob.objects.update(status="succeeded")
    client = client_for(make_user("reader", "testapp.view_lead"))
    response = client.get(LEADS)
    assert response.status_code == 200
    assert not any(n.startswith("regenerate") for n in action_names(response.content.decode()))
    messages = action(client, LEADS, "regenerate_ai_fields", [lead])
    assert messages in ([], ["No action selected."])  # the action does not exist for them
    assert not AIJob.objects.filter(triggered_by="admin").exists()


def test_the_lead_list_shows_a_badge_per_ai_field(root):
    lead = Lead.objects.create(name="Ada", notes="n")
    set_status(AIJob.objects.get(field_name="heat"), "failed", error="HTTP 401: bad key")
    html = root.get(LEADS).content.decode()
    assert html.count("ai-status--pending") == 2
    assert "Failed: HTTP 401: bad key" in html
    assert f'data-status-url="/ai/status/testapp.lead/{lead.pk}/summary/"' in html
    assert "django_ai_fields/status.js" in html
    assert "Summary status" in html


def test_the_lead_list_costs_the_same_queries_for_1_and_20_rows(root):
    def count_queries() -> int:
        root.get(LEADS)  # warm caches (content types, session)
        with CaptureQueriesContext(connection) as queries:
            assert root.get(LEADS).status_code == 200
        return len(queries)

    Lead.objects.create(name="first", notes="n")
    one = count_queries()
    for i in range(19):
        Lead.objects.create(name=f"L{i}", notes="n")
    assert count_queries() == one


# -- tenant scoping in the admin ---------------------------------------------------------------


def test_a_tenant_staff_user_sees_only_its_tenant(shops, scoped):  # noqa: F811
    client = client_for(
        make_user(
            "acme-ann",
            "django_ai_fields.view_aijob",
            "django_ai_fields.change_aijob",
            "django_ai_fields.view_quota",
            "django_ai_fields.change_quota",
        )
    )
    html = client.get(JOBS).content.decode()
    assert html.count('class="action-select"') == 1
    assert f"testapp.product #{shops['acme'].pk}" in html
    theirs = product_job(shops["globex"])
    assert client.get(f"{JOBS}{theirs.pk}/change/").status_code == 302  # "doesn't exist"
    set_status(theirs, "failed")
    action(client, JOBS, "retry_jobs", [theirs])
    assert AIJob.objects.get(pk=theirs.pk).status == "failed"
    # Quotas: visible, but a tenant cannot change its own limits.
    Quota.objects.create(tenant="acme", kind="requests", period="day", limit=1)
    Quota.objects.create(tenant="globex", kind="requests", period="day", limit=1)
    quotas = client.get(QUOTAS).content.decode()
    assert "acme" in quotas and "globex" not in quotas
    quota = Quota.objects.get(tenant="acme")
    assert 'name="_save"' not in client.get(f"{QUOTAS}{quota.pk}/change/").content.decode()


def test_a_tenant_user_writes_credentials_only_for_its_tenant(scoped):  # noqa: F811
    client = client_for(
        make_user(
            "acme-ann",
            "django_ai_fields.add_providercredential",
            "django_ai_fields.view_providercredential",
        )
    )
    response = client.post(
        f"{CREDENTIALS}add/",
        {"tenant": "globex", "provider": "openai", "new_api_key": "sk-acme"},
    )
    assert response.status_code == 302
    assert list(ProviderCredential.objects.values_list("tenant", flat=True)) == ["acme"]


def test_tenant_policies_are_editable_by_operators_only(client, settings):
    from django.contrib.auth.models import Permission, User

    from django_ai_fields.models import TenantPolicy

    TenantPolicy.objects.create(tenant="acme", ai_enabled=False, disabled_reason="Trial ended")
    operator = User.objects.create_superuser("op", "op@example.com", "pw")
    client.force_login(operator)
    page = client.get("/admin/django_ai_fields/tenantpolicy/")
    assert page.status_code == 200 and "Trial ended" in page.content.decode()
    policy = TenantPolicy.objects.get()
    change_url = f"/admin/django_ai_fields/tenantpolicy/{policy.pk}/change/"
    response = client.post(
        change_url,
        {"tenant": "acme", "ai_enabled": "on", "disabled_reason": "", "max_concurrent_jobs": "2"},
    )
    assert response.status_code == 302
    policy.refresh_from_db()
    assert (policy.ai_enabled, policy.max_concurrent_jobs) == (True, 2)

    settings.AI_FIELDS = {**settings.AI_FIELDS, "TENANT_FOR_USER": "tests.surfaces.tenant_of"}
    staff = User.objects.create_user("acme-staff", is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(codename__endswith="tenantpolicy"))
    client.force_login(staff)
    assert (
        client.post(change_url, {"tenant": "acme", "max_concurrent_jobs": "50"}).status_code == 403
    )


# -- the cost estimate before a regeneration (issue 15) ------------------------------------


def test_regenerate_shows_the_cost_estimate_and_enqueues_nothing_until_confirmed(root, settings):
    settings.AI_FIELDS = {
        **settings.AI_FIELDS,
        "PRICING": {"gpt-4o-mini": {"input": 0, "output": 1}},
    }
    leads = [Lead.objects.create(name=f"L{i}", notes="n") for i in range(2)]
    AIJob.objects.update(status="succeeded")
    jobs_before = AIJob.objects.count()
    response = root.post(
        LEADS,
        {"action": "regenerate_ai_field_heat", "_selected_action": [lead.pk for lead in leads]},
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "This requests 2 AI jobs for 2 row(s)" in html
    assert "Worst-case cost: $" in html
    assert "No quota or budget would refuse a job." in html
    assert 'name="confirm" value="yes"' in html
    assert AIJob.objects.count() == jobs_before  # nothing requested yet
    messages = action(root, LEADS, "regenerate_ai_field_heat", leads, confirm="yes")
    assert "2 AI jobs requested; the values update when they have run." in messages
    assert AIJob.objects.filter(triggered_by="admin").count() == 2


def test_the_job_admin_regenerates_the_jobs_rows_after_the_estimate(root):
    lead = Lead.objects.create(name="Ada", notes="n")
    AIJob.objects.update(status="succeeded")
    job = AIJob.objects.get(object_id=str(lead.pk), field_name="heat")
    jobs_before = AIJob.objects.count()
    response = root.post(JOBS, {"action": "regenerate_ai_fields", "_selected_action": [job.pk]})
    html = response.content.decode()
    assert "This requests 1 AI job for 1 row(s)" in html and "Worst-case cost: $" in html
    assert AIJob.objects.count() == jobs_before
    messages = action(root, JOBS, "regenerate_ai_fields", [job], confirm="yes")
    assert "1 AI job(s) requested; the values update when they have run." in messages
    fresh = AIJob.objects.filter(triggered_by="admin")
    assert list(fresh.values_list("object_id", "field_name")) == [(str(lead.pk), "heat")]
