"""Issue 22: ``manage.py check`` in a fresh project reports every installation
check, and every setting docs/settings.md documents passes them.

Each test runs ``manage.py check`` of a new project in a subprocess (about 2 s
each): in the test process the check modules are long imported, which hid that
they registered themselves only on import."""

from __future__ import annotations

import re
from pathlib import Path

from django_ai_fields.conf import DEFAULTS, PROVIDER_KEYS
from tests.fresh_project import BASE_APPS, FreshProject
from tests.settings_doc import provider_entry_examples, top_level_keys

SECRET = "sk-never-printed-1234"


def reported_ids(output: str) -> set[str]:
    return set(re.findall(r"\(django_ai_fields\.([EW]\d{3})\)", output))


def test_every_documented_setting_passes_manage_py_check(tmp_path: Path) -> None:
    entry = provider_entry_examples()
    ai_fields = {key: DEFAULTS.get(key, "documented") for key in top_level_keys()}
    ai_fields["PROVIDERS"] = {"openai": entry}
    output = FreshProject(tmp_path, ai_fields).check()
    assert "System check identified no issues" in output, output


def test_the_settings_page_documents_every_provider_key_and_no_other() -> None:
    assert sorted(provider_entry_examples()) == sorted(PROVIDER_KEYS)


def test_manage_py_check_reports_each_installation_mistake(tmp_path: Path) -> None:
    """One project with one of each mistake, and a model with an AI field (whose
    check() used to be what imported, too late, the installation checks)."""
    project = FreshProject(
        tmp_path,
        {
            "DEFAULT_PROVIDER": "nowhere.Provider",  # E008
            "QUEUE": "ai",  # E010: not in RQ_QUEUES
            "ENCRYPTION_KEY": "not-a-fernet-key",  # E012
            "PROVIDERS": {
                "openai": {"API_KEY": SECRET, "BASEURL": "http://10.0.0.5/v1"},  # E015
                "azure": {"API": "completions"},  # E146
            },
            "DEFUALT_MODEL": "gpt-4o",  # W013
            "PII_PHONE_REGIONS": ["XX"],  # E032
        },
        with_ai_field=True,
    )
    output = project.check()
    assert reported_ids(output) >= {"E008", "E010", "E012", "E015", "E146", "W013", "E032"}
    assert "Did you mean 'BASE_URL'?" in output
    assert "Did you mean 'DEFAULT_MODEL'?" in output
    assert SECRET not in output


def test_manage_py_check_reports_a_missing_django_rq(tmp_path: Path) -> None:
    apps = [app for app in BASE_APPS if app != "django_rq"]
    output = FreshProject(tmp_path, installed_apps=apps).check()
    assert "E011" in reported_ids(output), output


def test_manage_py_check_database_warns_about_internal_tenant_urls(tmp_path: Path) -> None:
    """W020 is a database check: ``check --database default`` (and ``migrate``)."""
    project = FreshProject(tmp_path)
    assert project.manage("migrate", "--verbosity", "0").returncode == 0
    urls = [
        "http://169.254.169.254/latest/",
        "http://2130706433:8000/v1",
        "https://api.openai.com/v1",
    ]
    script = "from django_ai_fields.models import ProviderCredential as C\n" + "".join(
        f"C.objects.create(tenant='t{n}', provider='openai', api_key='k', base_url={url!r})\n"
        for n, url in enumerate(urls)
    )
    created = project.manage("shell", "--command", script)
    assert created.returncode == 0, created.stderr
    output = project.check("--database", "default")
    warned = re.findall(r"Provider credential #\d+ \(tenant '(t\d)'", output)
    assert sorted(warned) == ["t0", "t1"], output
