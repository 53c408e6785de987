"""``manage.py check`` in a fresh project warns about deployment shapes in which jobs
would wait forever without a word (deployment_checks.py)."""

from __future__ import annotations

from pathlib import Path

from tests.fresh_project import BASE_APPS, FreshProject

TENANT_SETTINGS = {"TENANT_MODEL": "customers.Client", "TENANT_DOMAIN_MODEL": "customers.Domain"}


def check(tmp_path: Path, **extra: object) -> str:
    return FreshProject(tmp_path, with_ai_field=True, extra_settings=extra).check()


def test_the_app_in_tenant_apps_without_schema_support_is_an_error(tmp_path: Path) -> None:
    output = check(
        tmp_path,
        SHARED_APPS=BASE_APPS,
        TENANT_APPS=["django_ai_fields", "shop"],
        **TENANT_SETTINGS,
    )
    assert "django_ai_fields.E051" in output
    assert "'django.db.backends.sqlite3'" in output and "django_tenants" in output


def test_the_app_in_neither_list_of_django_tenants_is_an_error(tmp_path: Path) -> None:
    output = check(tmp_path, SHARED_APPS=["django.contrib.contenttypes"], TENANT_APPS=["shop"])
    assert "django_ai_fields.E052" in output


def test_one_shared_job_table_without_a_tenant_resolver_is_a_warning(tmp_path: Path) -> None:
    shared = {"SHARED_APPS": BASE_APPS, "TENANT_APPS": ["shop"]}
    assert "django_ai_fields.W050" in check(tmp_path / "a", **shared)
    project = FreshProject(
        tmp_path / "b",
        {"TENANT_RESOLVER": "django_ai_fields.tenants.schemas.schema_tenant"},
        with_ai_field=True,
        extra_settings=shared,
    )
    output = project.check()
    assert "W050" not in output and "System check identified no issues" in output


def test_a_job_context_hook_that_is_no_hook_is_an_error(tmp_path: Path) -> None:
    missing = FreshProject(tmp_path / "a", {"JOB_CONTEXT": "nowhere.Hook"}).check()
    assert "django_ai_fields.E050" in missing and "cannot be imported" in missing
    not_a_hook = FreshProject(tmp_path / "b", {"JOB_CONTEXT": "os.path.join"}).check()
    assert "django_ai_fields.E050" in not_a_hook and "ContextHook" in not_a_hook


def test_rows_written_where_the_app_never_looks_for_jobs_is_a_warning(tmp_path: Path) -> None:
    """The router keeps the app's models in "other"; the shop's rows (and so their
    jobs) are written to "default", which the app then never visits."""
    router = (Path(__file__).parent / "routers.py").read_text()
    project = FreshProject(
        tmp_path,
        with_ai_field=True,
        files={"routers.py": router},
        extra_settings={
            "DATABASES": {
                alias: {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / alias)}
                for alias in ("default", "other")
            },
            "DATABASE_ROUTERS": ["routers.SplitAppsRouter"],
        },
    )
    output = project.check()
    assert "django_ai_fields.W051" in output
    assert "shop.Product" in output and "'default'" in output


def test_job_databases_naming_an_unknown_database_is_an_error(tmp_path: Path) -> None:
    output = FreshProject(tmp_path, {"JOB_DATABASES": ["default", "replica"]}).check()
    assert "django_ai_fields.E053" in output and "'replica'" in output


def test_the_usual_shapes_pass_the_checks(tmp_path: Path) -> None:
    router = (Path(__file__).parent / "routers.py").read_text()
    project = FreshProject(
        tmp_path,
        with_ai_field=True,
        files={"routers.py": router},
        extra_settings={
            "DATABASES": {
                alias: {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / alias)}
                for alias in ("default", "replica")
            },
            "DATABASE_ROUTERS": ["routers.LaggingReplicaRouter"],
        },
    )
    output = project.check()
    assert "System check identified no issues" in output, output
