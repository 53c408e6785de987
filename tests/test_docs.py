"""The documentation: every code sample is exercised, every page is in the site's nav,
and the settings and field options the docs name are the ones the code has.

Each ```python block in docs/*.md is either

- run here in a sandbox (no database): settings samples are executed and their
  ``AI_FIELDS`` keys checked against ``conf.DEFAULTS``; model samples are executed
  inside ``isolate_apps`` and must pass ``Model.check()``; anything else must at
  least execute (imports and definitions). Samples may use ``env(...)``,
  ``os.environ[...]`` and ``BASE_DIR`` as a settings.py would; they read placeholders;
- or marked on the line before its fence with ``<!-- tested-by: tests/FILE.py[::test] -->``
  (the file and test must exist; the tests below run the ``tests/test_docs.py`` ones
  literally) or ``<!-- not-tested: reason -->``.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import sys
import textwrap
import threading
import types
import unittest
from collections.abc import Iterator
from dataclasses import dataclass, replace
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, models
from django.test.utils import isolate_apps

from django_ai_fields import functions
from django_ai_fields.api import run_ai_task
from django_ai_fields.conf import DEFAULTS
from django_ai_fields.declare.options import AIOptions, FieldOptions
from django_ai_fields.declare.prompts import PromptTemplate
from django_ai_fields.fields import AIGeneratedJSONField
from django_ai_fields.jobs.tasks import run_job
from django_ai_fields.models import AIJob, AIUsage, ProviderCredential, Quota
from django_ai_fields.providers import BUILTIN, CompletionRequest, Provider, ProviderError
from tests.settings_doc import top_level_keys
from tests.testapp.models import Brief, Lead, PlainLead, Product

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PYTHON = {"python", "py"}
SANDBOX_MODULE = "tests.testapp.docs_sample"  # models defined here get app_label "testapp"

MARKER = re.compile(r"^\s*<!--\s*(?P<kind>tested-by|not-tested)\s*:\s*(?P<value>.*?)\s*-->\s*$")
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)")


# -- reading the docs --------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # the opening fence, 1-based
    lang: str
    code: str
    marker: tuple[str, str] | None

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    def compile(self, code: str | None = None) -> types.CodeType:
        """Compiled with the markdown file's name and line numbers, for tracebacks."""
        return compile("\n" * self.line + (code or self.code), str(self.path), "exec")


def doc_pages() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def code_blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence = opening["fence"]
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        end = next((j for j in range(i + 1, len(lines)) if closing.match(lines[j])), len(lines))
        marker = MARKER.match(lines[i - 1]) if i else None
        blocks.append(
            Block(
                path=path,
                line=i + 1,
                lang=opening["lang"].lower(),
                code=textwrap.dedent("\n".join(lines[i + 1 : end])),
                marker=(marker["kind"], marker["value"]) if marker else None,
            )
        )
        i = end + 1
    return blocks


def python_blocks() -> list[Block]:
    return [b for page in doc_pages() for b in code_blocks(page) if b.lang in PYTHON]


def samples_tested_by(test_name: str, count: int) -> list[Block]:
    """The blocks marked ``tested-by: tests/test_docs.py::<test_name>``, in page order."""
    target = f"tests/test_docs.py::{test_name}"
    blocks = [b for b in python_blocks() if b.marker == ("tested-by", target)]
    found = [str(b) for b in blocks]
    assert len(blocks) == count, f"expected {count} sample(s) marked {target}, found {found}"
    return blocks


# -- the sandbox --------------------------------------------------------------------


class _Environ(dict):  # type: ignore[type-arg]
    def __missing__(self, key: str) -> str:
        return f"<{key}>"


def fake_env(name: str, default: Any = None, **kwargs: Any) -> Any:
    """django-environ's ``env(...)`` as settings samples use it: a placeholder."""
    return f"<{name}>"


def sandbox_globals(module_name: str = SANDBOX_MODULE) -> dict[str, Any]:
    environ = _Environ()
    return {
        "__name__": module_name,
        "__package__": module_name.rpartition(".")[0],  # for `from .models import ...`
        "env": fake_env,
        "os": types.SimpleNamespace(environ=environ, getenv=environ.get),
        "BASE_DIR": Path("/srv/project"),
    }


def exec_block(block: Block, namespace: dict[str, Any], code: str | None = None) -> None:
    exec(block.compile(code), namespace)


def exec_as_module(block: Block, name: str, monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """Run a sample as the module it says it is (``myproject.providers``...), importable."""
    module = types.ModuleType(name)
    module.__dict__.update(sandbox_globals(name))
    parts = name.split(".")
    for depth in range(1, len(parts)):
        parent = ".".join(parts[:depth])
        if parent not in sys.modules:
            monkeypatch.setitem(sys.modules, parent, types.ModuleType(parent))
    monkeypatch.setitem(sys.modules, name, module)
    exec_block(block, module.__dict__)
    return module


def settings_fragment(code: str) -> str | None:
    """``"KEY": value,`` lines from a settings sample, as an ``AI_FIELDS`` dict."""
    wrapped = "AI_FIELDS = {\n" + code + "\n}"
    try:
        ast.parse(wrapped)
    except SyntaxError:
        return None
    return wrapped


def source_keys(pattern: str, *files: str) -> set[str]:
    text = "".join((ROOT / "django_ai_fields" / f).read_text() for f in files)
    return set(re.findall(pattern, text))


def package_files() -> list[Path]:
    return sorted((ROOT / "django_ai_fields").rglob("*.py"))


def provider_config_keys() -> set[str]:
    """Keys the providers read from a PROVIDERS entry (``config.get("API_KEY")``...)."""
    files = [str(p.relative_to(ROOT / "django_ai_fields")) for p in package_files()]
    return source_keys(r"config(?:\.get\(|\[)\s*\"([A-Z_]+)\"", *files)


def pricing_keys() -> set[str]:
    return source_keys(r"entry(?:\.get\(|\[)\s*\"(\w+)\"", "money/pricing.py")


def check_ai_fields(value: Any) -> list[str]:
    if not isinstance(value, dict):
        return [f"AI_FIELDS is a {type(value).__name__}, not a dict"]
    problems = [f"AI_FIELDS[{key!r}] is not a setting" for key in value if key not in DEFAULTS]
    provider = value.get("DEFAULT_PROVIDER")
    if provider is not None and provider not in BUILTIN and "." not in provider:
        problems.append(f"DEFAULT_PROVIDER {provider!r} is neither built in nor a dotted path")
    known = provider_config_keys()
    for name, entry in (value.get("PROVIDERS") or {}).items():
        if name not in BUILTIN and "." not in name:
            problems.append(f"PROVIDERS[{name!r}]: neither a built-in provider nor a dotted path")
        problems += [f"PROVIDERS[{name!r}][{k!r}] is not read" for k in entry if k not in known]
    prices_read = pricing_keys()
    for model, prices in (value.get("PRICING") or {}).items():
        problems += [
            f"PRICING[{model!r}][{k!r}] is not read" for k in prices if k not in prices_read
        ]
    return problems


def check_namespace(namespace: dict[str, Any]) -> list[str]:
    """What a sample defined must be right: settings, models, providers, prompts."""
    problems: list[str] = []
    if "AI_FIELDS" in namespace:
        problems += check_ai_fields(namespace["AI_FIELDS"])
        queues = namespace.get("RQ_QUEUES")
        queue = namespace["AI_FIELDS"].get("QUEUE", DEFAULTS["QUEUE"])
        if queues is not None and queue not in queues:
            problems.append(f"AI_FIELDS['QUEUE'] {queue!r} is not in RQ_QUEUES")
    for app in namespace.get("INSTALLED_APPS", ()):
        try:
            __import__(app)
        except ImportError:
            problems.append(f"INSTALLED_APPS: {app!r} cannot be imported")
    if isinstance(namespace.get("prompt"), str):
        try:
            PromptTemplate.parse(namespace["prompt"])
        except Exception as exc:
            problems.append(f"prompt does not parse: {exc}")
    for value in list(namespace.values()):
        if not isinstance(value, type) or value.__module__ != namespace["__name__"]:
            continue
        if issubclass(value, models.Model) and not value._meta.abstract:
            errors = [m for m in value.check() if m.level >= checks.ERROR]
            problems += [f"{value.__name__}.check(): {m.id} {m.msg}" for m in errors]
        if issubclass(value, Provider):
            try:
                value({})
            except TypeError as exc:
                problems.append(f"provider {value.__name__} cannot be built: {exc}")
    return problems


def run_in_sandbox(block: Block) -> list[str]:
    """Execute an unmarked sample without a database; return what is wrong with it."""
    code = block.code
    try:
        ast.parse(code)
    except SyntaxError as exc:
        code = settings_fragment(block.code) or ""
        if not code:
            return [f"not valid Python ({exc.msg}, line {block.line + (exc.lineno or 0)})"]
    namespace = sandbox_globals()
    # A sample's models live in a throwaway app registry, its AI functions in a copy.
    with isolate_apps("tests.testapp"), mock.patch.dict(functions._registry):
        try:
            exec_block(block, namespace, code)
        except Exception as exc:
            return [f"does not run here: {type(exc).__name__}: {exc}"]
        return check_namespace(namespace)


def marker_problems(block: Block) -> list[str]:
    assert block.marker is not None
    kind, value = block.marker
    if kind == "not-tested":
        return [] if value else ["<!-- not-tested: --> needs a reason"]
    file, _, test = value.partition("::")
    path = ROOT / file
    if not (file.startswith("tests/") and path.is_file()):
        return [f"tested-by names {file!r}, which is not a file under tests/"]
    if test and not re.search(rf"^\s*def {re.escape(test)}\(", path.read_text(), re.MULTILINE):
        return [f"tested-by names {value!r}, but {file} has no test {test}"]
    return []


# -- the samples ----------------------------------------------------------------------


def test_every_python_sample_runs_or_is_marked() -> None:
    blocks = python_blocks()
    assert len(blocks) > 20, "the docs' code samples were not found"
    failures = []
    for block in blocks:
        problems = marker_problems(block) if block.marker else run_in_sandbox(block)
        failures += [f"{block}: {problem}" for problem in problems]
    assert not failures, (
        "Code samples in docs/ that are wrong, or neither runnable here nor marked with "
        "<!-- tested-by: tests/... --> / <!-- not-tested: reason --> on the line before "
        "the fence:\n" + "\n".join(failures)
    )


def test_every_marker_is_on_the_line_before_a_fence() -> None:
    stray = []
    for page in doc_pages():
        lines = page.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, start=1):
            if MARKER.match(line) and not (number < len(lines) and FENCE.match(lines[number])):
                stray.append(f"{page.relative_to(ROOT)}:{number}")
    assert not stray, f"markers not followed by a code fence: {stray}"


def test_the_sandbox_catches_wrong_samples(tmp_path: Path) -> None:
    """The checks above can fail: a bad setting, a broken model and prose that does not run."""
    page = tmp_path / "bad.md"
    page.write_text(
        "```python\nAI_FIELDS = {'DEFAULT_PROVIDR': 'openai'}\n```\n\n"
        "```python\nfrom django.db import models\n"
        "from django_ai_fields.fields import AIGeneratedField\n\n"
        "class Note(models.Model):\n"
        "    body = AIGeneratedField(prompt='Sum up {text}', null=True)\n```\n\n"
        "```python\nlead.save()\n```\n\n"
        '```python\n"PROVIDERS": {"openai": {"APIKEY": "sk"}}\n```\n',
        encoding="utf-8",
    )
    results = [run_in_sandbox(block) for block in code_blocks(page)]
    assert results[0] == ["AI_FIELDS['DEFAULT_PROVIDR'] is not a setting"]
    assert any("E003" in problem for problem in results[1])
    assert results[2][0].startswith("does not run here: NameError")
    assert results[3] == ["PROVIDERS['openai']['APIKEY'] is not read"]
    block = code_blocks(page)[2]
    for marker, problem in [
        (("tested-by", "tests/test_nothing_here.py"), "not a file under tests/"),
        (("tested-by", "tests/test_docs.py::test_no_such_test"), "has no test"),
        (("not-tested", ""), "needs a reason"),
    ]:
        (found,) = marker_problems(replace(block, marker=marker))
        assert problem in found


# -- the nav and the reference tables ---------------------------------------------------


def nav_pages() -> list[str]:
    """Pages named in mkdocs.yml's nav (commented-out lines are not in it)."""
    text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = re.search(r"^nav:\n((?:[ \t]+.*\n?|\n)*)", text, re.MULTILINE)
    assert nav, "mkdocs.yml has no nav"
    lines = [line for line in nav[1].splitlines() if not line.strip().startswith("#")]
    return re.findall(r":\s*([\w./-]+\.md)\s*$", "\n".join(lines), re.MULTILINE)


def test_every_page_is_in_the_nav_once() -> None:
    pages = [p.name for p in doc_pages()]
    nav = nav_pages()
    assert sorted(nav) == sorted(set(nav)), "a page is listed twice in the nav"
    missing = sorted(set(pages) - set(nav))
    assert not missing, f"add these docs/ pages to the nav in mkdocs.yml: {missing}"
    assert not set(nav) - set(pages), f"the nav names missing pages: {set(nav) - set(pages)}"


def table_names(page: str, pattern: str) -> set[str]:
    text = (DOCS / page).read_text(encoding="utf-8")
    return set(re.findall(pattern, text, re.MULTILINE))


def test_settings_page_documents_every_setting_and_no_other() -> None:
    documented = set(top_level_keys())  # the PROVIDERS entries' keys are not settings
    assert sorted(set(DEFAULTS) - documented) == [], "settings missing from docs/settings.md"
    assert sorted(documented - set(DEFAULTS)) == [], "docs/settings.md names unknown settings"


def test_every_setting_named_anywhere_in_the_docs_exists() -> None:
    named = {
        (page.name, key)
        for page in doc_pages()
        for key in re.findall(r"AI_FIELDS\[\s*[\"'](\w+)[\"']\s*\]", page.read_text())
    }
    unknown = sorted((page, key) for page, key in named if key not in DEFAULTS)
    assert not unknown, f"docs name settings conf.DEFAULTS does not have: {unknown}"


def field_options() -> set[str]:
    json_field = inspect.signature(AIGeneratedJSONField.__init__).parameters
    json_only = {n for n, p in json_field.items() if p.kind is p.KEYWORD_ONLY}
    return FieldOptions.names() | json_only


def test_fields_page_documents_every_field_option_and_no_other() -> None:
    documented = table_names("fields.md", r"^\| `([a-z_]+)`(?: \([^)]*\))? \|")
    options = field_options()
    assert sorted(options - documented) == [], "field options missing from docs/fields.md"
    assert sorted(documented - options) == [], "docs/fields.md names unknown field options"


def test_functions_page_documents_every_attribute_and_option_and_no_other() -> None:
    text = (DOCS / "functions.md").read_text(encoding="utf-8")
    section = text.split("### Attributes", 1)[1].split("\n## ", 1)[0]
    first_cells = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    documented = {name for cell in first_cells for name in re.findall(r"`([a-z_]+)`", cell)}
    attributes = {"name", "json_output", "json_schema", "max_items"}
    assert sorted(documented) == sorted(AIOptions.names() | attributes)


def test_fields_page_lists_every_system_check_and_no_other() -> None:
    code = "".join(p.read_text() for p in package_files())
    raised = set(re.findall(r"\"([EW]\d{3})\"", code)) | set(
        re.findall(r"django_ai_fields\.([EW]\d{3})", code)
    )
    documented = table_names("fields.md", r"^\| `(?:django_ai_fields\.)?([EW]\d{3})` \|")
    assert sorted(raised) == sorted(documented)


# -- samples run literally by the tests below ----------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_quickstart_session(worker) -> None:
    """Quick start steps 5 and 6, with the suite's Lead (the same fields but email)."""
    create, refresh, follow = samples_tested_by("test_quickstart_session", 3)
    namespace = {"Lead": Lead}
    exec_block(create, namespace)
    worker.drain()
    exec_block(refresh, namespace)
    lead = namespace["lead"]
    assert lead.summary == "Wants 40 seats"  # the notes: the record's only prose
    assert lead.heat in {"hot", "warm", "cold"}
    assert set(lead.profile) == {"industry", "employees"}
    exec_block(follow, namespace)
    assert namespace["job"].status == "succeeded"
    fresh = AIJob.objects.filter(field_name="summary", triggered_by="regenerate").get()
    assert fresh.status == "succeeded"  # the sync regenerate ran the open job at once


@pytest.mark.django_db
def test_testcase_sample_passes(monkeypatch) -> None:
    """Troubleshooting: the TestCase with captureOnCommitCallbacks runs and passes."""
    (block,) = samples_tested_by("test_testcase_sample_passes", 1)
    models_module = types.ModuleType("myapp.models")
    models_module.Lead = Lead  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "myapp", types.ModuleType("myapp"))
    monkeypatch.setitem(sys.modules, "myapp.models", models_module)
    namespace = sandbox_globals("myapp.tests")
    exec_block(block, namespace)
    (case,) = [
        v for v in namespace.values() if isinstance(v, type) and v.__module__ == "myapp.tests"
    ]
    result = unittest.TestResult()
    unittest.defaultTestLoader.loadTestsFromTestCase(case).run(result)
    assert result.testsRun == 1
    assert result.wasSuccessful(), result.errors + result.failures


@pytest.mark.django_db(transaction=True)
def test_stale_instance_full_save_and_update_fields(worker) -> None:
    """Troubleshooting: a stale full save() writes the old AI value back; update_fields
    does not. The suite's Lead has ``ssn`` where the docs' Lead has ``email``: a field
    excluded from every prompt, so saving it starts no job."""
    samples_tested_by("test_stale_instance_full_save_and_update_fields", 2)
    Lead.objects.create(name="Ada", company="Analytical Engines", notes="40 seats")
    stale = Lead.objects.get()
    worker.drain()
    written = Lead.objects.values_list("summary", flat=True).get()
    assert stale.summary is None and written == "Ada (Analytical Engines, 40 seats)"
    jobs = AIJob.objects.count()

    stale.ssn = "078-05-1120"
    stale.save(update_fields=["ssn"])
    assert Lead.objects.values_list("summary", flat=True).get() == written
    stale.save()
    assert Lead.objects.values_list("summary", flat=True).get() is None
    assert AIJob.objects.count() == jobs  # nothing regenerates it


@pytest.mark.django_db(transaction=True)
def test_quota_troubleshooting_sample(fake_provider, settings, worker) -> None:
    """Troubleshooting: a refused job succeeds after the limit is raised and it is retried."""
    (block,) = samples_tested_by("test_quota_troubleshooting_sample", 1)
    settings.AI_FIELDS = {
        **settings.AI_FIELDS,
        "TENANT_RESOLVER": "tests.testapp.tenancy.product_tenant",
    }
    Quota.objects.create(tenant="acme", kind="requests", period="day", limit=1)
    Product.objects.create(shop="acme", title="Lamp", price=10)
    Product.objects.create(shop="acme", title="Desk", price=90)
    worker.drain()
    assert sorted(AIJob.objects.values_list("status", "error_code")) == [
        ("failed", "quota_exceeded"),
        ("succeeded", ""),
    ]
    exec_block(block, {})
    worker.drain()
    assert set(AIJob.objects.values_list("status", flat=True)) == {"succeeded"}
    assert fake_provider.calls == 2


@pytest.mark.django_db
def test_credential_and_rotation_samples(settings) -> None:
    """Tenants & keys: create a credential, rotate the encryption key, read it back."""
    from cryptography.fernet import Fernet

    create, rotate = samples_tested_by("test_credential_and_rotation_samples", 2)
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.AI_FIELDS = {**settings.AI_FIELDS, "ENCRYPTION_KEY": old}
    exec_block(create, {})
    settings.AI_FIELDS = {**settings.AI_FIELDS, "ENCRYPTION_KEY": new}
    with pytest.raises(ImproperlyConfigured):
        ProviderCredential.objects.get(tenant="acme").get_api_key()
    settings.AI_FIELDS = {**settings.AI_FIELDS, "ENCRYPTION_KEY": [new, old]}
    exec_block(rotate, {})
    settings.AI_FIELDS = {**settings.AI_FIELDS, "ENCRYPTION_KEY": [new]}
    with connection.cursor() as cursor:  # the stored column holds a token, not the key
        cursor.execute("SELECT api_key FROM django_ai_fields_providercredential")
        assert "sk-acme" not in cursor.fetchone()[0]
    credential = ProviderCredential.objects.get(tenant="acme")
    assert credential.get_api_key() == "sk-acme-..."
    assert (credential.provider, credential.default_model) == ("openai", "gpt-4.1-mini")


@pytest.mark.django_db
def test_tenant_resolver_sample(settings, monkeypatch) -> None:
    (block,) = samples_tested_by("test_tenant_resolver_sample", 1)
    module = exec_as_module(block, "myproject.tenancy", monkeypatch)
    assert check_ai_fields(module.AI_FIELDS) == []
    settings.AI_FIELDS = {**settings.AI_FIELDS, **module.AI_FIELDS}
    Lead.objects.create(name="Ada", company="Analytical Engines")
    Lead.objects.create(name="Bob", company="")
    tenants = set(AIJob.objects.values_list("tenant", flat=True))
    assert tenants == {"Analytical Engines", ""}


@pytest.mark.django_db
def test_second_openai_compatible_endpoint(fake_provider, settings, monkeypatch) -> None:
    """Providers: a subclass of OpenAIProvider reads its own PROVIDERS entry."""
    (block,) = samples_tested_by("test_second_openai_compatible_endpoint", 1)
    module = exec_as_module(block, "myproject.providers", monkeypatch)
    assert check_ai_fields(module.AI_FIELDS) == []
    providers = module.AI_FIELDS["PROVIDERS"]
    path = "myproject.providers.LocalLLM"
    local = {**providers[path], "BASE_URL": fake_provider.openai_base_url}
    settings.AI_FIELDS = {
        **settings.AI_FIELDS,
        "DEFAULT_PROVIDER": path,  # the suite's Brief names no provider
        "PROVIDERS": {**settings.AI_FIELDS["PROVIDERS"], path: local},
    }
    Brief.objects.create(title="Q3")
    assert run_job(AIJob.objects.get().pk) == "succeeded"
    (request,) = fake_provider.provider_requests
    assert request.body["model"] == "llama3.2"
    assert request.headers["authorization"] == "Bearer ollama"
    assert request.body["max_tokens"] == 100  # BASE_URL set: max_tokens, not max_completion_
    assert AIUsage.objects.get().provider == path


class _Gateway(BaseHTTPRequestHandler):
    """The in-house gateway of the custom provider sample, on loopback."""

    disable_nagle_algorithm = True
    replies: list[tuple[int, dict[str, str], dict[str, Any]]]
    received: list[dict[str, Any]]

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.received.append({"path": self.path, "auth": self.headers["Authorization"], **body})
        status, headers, payload = self.replies.pop(0)
        data = json.dumps(payload).encode()
        self.send_response(status)
        for name, value in {**headers, "Content-Type": "application/json"}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def gateway() -> Iterator[type[_Gateway]]:
    handler = type("Gateway", (_Gateway,), {"replies": [], "received": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    handler.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    yield handler
    server.shutdown()
    server.server_close()


@pytest.mark.django_db
def test_custom_provider_sample(gateway, settings, monkeypatch) -> None:
    """Providers: the complete custom provider writes a value, costs and fails right."""
    provider_block, settings_block = samples_tested_by("test_custom_provider_sample", 2)
    module = exec_as_module(provider_block, "myproject.providers", monkeypatch)
    sample_settings = sandbox_globals()
    exec_block(settings_block, sample_settings)
    assert check_ai_fields(sample_settings["AI_FIELDS"]) == []
    path = "myproject.providers.GatewayProvider"
    entry = {**sample_settings["AI_FIELDS"]["PROVIDERS"][path], "BASE_URL": gateway.url}
    settings.AI_FIELDS = {
        **settings.AI_FIELDS,
        **sample_settings["AI_FIELDS"],
        "DEFAULT_PROVIDER": path,
        "PROVIDERS": {path: entry},
    }

    gateway.replies.append((200, {}, {"text": "A brief.", "usage": {"input": 1000, "output": 500}}))
    brief = Brief.objects.create(title="Q3 results")
    assert run_job(AIJob.objects.get().pk) == "succeeded"
    brief.refresh_from_db()
    assert brief.text == "A brief."
    (sent,) = gateway.received
    assert (sent["path"], sent["auth"]) == ("/generate", "Bearer <GATEWAY_KEY>")
    assert (sent["model"], sent["max_tokens"]) == ("house-model", 100)
    assert "Q3 results" in sent["prompt"]
    usage = AIUsage.objects.get()
    assert (usage.input_tokens, usage.output_tokens) == (1000, 500)
    assert usage.cost_usd == Decimal("0.000300")  # 1000 x 0.10 + 500 x 0.40 micro-dollars

    provider = module.GatewayProvider({"API_KEY": "k", "BASE_URL": gateway.url, "TIMEOUT": 5})
    request = CompletionRequest(system="s", prompt="p", model="house-model", max_tokens=10)
    gateway.replies += [(429, {"Retry-After": "7"}, {}), (503, {}, {})]
    with pytest.raises(ProviderError) as limited:
        provider.complete(request)
    assert (limited.value.code, limited.value.retry_after) == ("rate_limited", 7.0)
    with pytest.raises(ProviderError) as down:
        provider.complete(request)
    assert down.value.code == "provider_unavailable" and down.value.retryable
    calls = len(gateway.received)
    with pytest.raises(ProviderError) as no_key:
        module.GatewayProvider({"BASE_URL": gateway.url}).complete(request)
    assert no_key.value.code == "auth" and len(gateway.received) == calls


@pytest.mark.django_db
def test_ai_function_sample(fake_provider, monkeypatch) -> None:
    """AI functions: the sample function, registered as crm.ai_functions, makes a lead
    (the suite's PlainLead stands in for crm.models.Lead); empty text is refused."""
    function_block, start_block = samples_tested_by("test_ai_function_sample", 2)
    monkeypatch.setattr(functions, "_registry", dict(functions._registry))
    crm_models = types.ModuleType("crm.models")
    crm_models.Lead = PlainLead  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "crm.models", crm_models)
    exec_as_module(function_block, "crm.ai_functions", monkeypatch)
    fake_provider.responder = lambda request: json.dumps({"name": "Ada", "company": "AE Ltd"})

    namespace: dict[str, Any] = {}
    exec_block(start_block, namespace)
    job = namespace["job"]
    assert (job.function, job.status) == ("lead_from_text", "pending")
    assert run_job(job.pk) == "succeeded"
    lead = PlainLead.objects.get()
    assert (lead.name, lead.company) == ("Ada", "AE Ltd")
    assert lead.notes == "Ada Lovelace, Analytical Engines Ltd"
    assert (
        '<data field="text">Ada Lovelace'
        in fake_provider.last_request.body["messages"][-1]["content"]
    )

    refused = run_ai_task("lead_from_text", {"text": "  "}, sync=True)
    assert (refused.status, refused.error_code) == ("failed", "bad_request")
    assert fake_provider.calls == 1
