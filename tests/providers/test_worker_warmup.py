"""The worker's parent process warms the providers, so forked work horses inherit
the SDK client and its lazily imported modules instead of building them per job."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.fake_provider import FakeProvider

# Runs in a fresh interpreter started as ``manage.py rqworker``: after start-up, one
# call to the fake provider must import no SDK module and build no SDK client.
CHILD = """
import sys, django
sys.argv = ["manage.py", "rqworker"]
django.setup()
from django_ai_fields.providers import CompletionRequest
from django_ai_fields.tenants.credentials import get_provider
from django_ai_fields.providers.base import clients

def one_call():
    before_modules, before_clients = set(sys.modules), len(clients._clients)
    request = CompletionRequest(system="s", prompt="p", model="m", max_tokens=5)
    get_provider(PROVIDER).complete(request)
    sdk_prefixes = ("openai", "anthropic", "httpx", "httpcore", "pydantic")
    new = sorted(m for m in set(sys.modules) - before_modules if m.startswith(sdk_prefixes))
    return json.dumps({"new_modules": new, "new_clients": len(clients._clients) - before_clients})
"""
IN_PARENT = "print(one_call())\n"
# As RQ's default worker runs a job: in a work horse forked from the warmed parent.
IN_FORKED_HORSE = """
import os
read_end, write_end = os.pipe()
pid = os.fork()
if pid == 0:
    try:
        os.write(write_end, one_call().encode())
    finally:
        os._exit(0)
os.close(write_end)
print(os.read(read_end, 65536).decode())
os.waitpid(pid, 0)
"""


@pytest.mark.parametrize("where", ["parent", "forked_horse"])
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_work_horse_inherits_a_warm_provider(fake_provider_server: FakeProvider, provider, where):
    server = fake_provider_server
    server.reset()
    base_url = server.openai_base_url if provider == "openai" else server.anthropic_base_url
    overrides = {
        "DEFAULT_PROVIDER": provider,
        "PROVIDERS": {provider: {"API_KEY": "sk-warm", "BASE_URL": base_url, "TIMEOUT": 5}},
    }
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "AI_FIELDS_TEST_OVERRIDES": json.dumps(overrides),
    }
    run = IN_PARENT if where == "parent" else IN_FORKED_HORSE
    code = f"import json\nPROVIDER = {provider!r}\n" + CHILD + run
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert server.calls == 1  # the call really went out
    assert report == {"new_modules": [], "new_clients": 0}


# A drain's first call in a work horse: an async call on the call loop, then its price.
ASYNC_CHILD = """
import asyncio, json, sys, django
sys.argv = ["manage.py", "rqworker"]
django.setup()
from genai_prices import data_snapshot
from django_ai_fields.money import pricing
from django_ai_fields.providers import CompletionRequest
from django_ai_fields.providers.loop import call_loop
from django_ai_fields.tenants.credentials import get_provider

def first_drain_call():
    before_modules = set(sys.modules)
    price_data_loads = data_snapshot._bundled_snapshot.cache_info().misses
    request = CompletionRequest(system="s", prompt="p", model="gpt-4o-mini", max_tokens=5)
    coroutine = get_provider("openai").acomplete(request)
    asyncio.run_coroutine_threadsafe(coroutine, call_loop()).result(timeout=30)
    pricing.cost_micro("gpt-4o-mini", input_tokens=10, output_tokens=5, provider="openai")
    prefixes = ("anyio", "openai", "httpx", "httpcore", "pydantic", "genai_prices")
    new = sorted(m for m in set(sys.modules) - before_modules if m.startswith(prefixes))
    loads = data_snapshot._bundled_snapshot.cache_info().misses - price_data_loads
    return json.dumps({"new_modules": new, "price_data_loads": loads})
"""


def test_a_work_horse_inherits_the_price_data_and_the_async_backend(
    fake_provider_server: FakeProvider,
):
    """A drain calls through the async client, and prices each answer: the worker's
    parent loaded the price data and anyio's asyncio backend once, for every horse."""
    server = fake_provider_server
    server.reset()
    overrides = {
        "DEFAULT_PROVIDER": "openai",
        "PROVIDERS": {
            "openai": {"API_KEY": "sk-warm", "BASE_URL": server.openai_base_url, "TIMEOUT": 5}
        },
    }
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "AI_FIELDS_TEST_OVERRIDES": json.dumps(overrides),
    }
    code = ASYNC_CHILD + IN_FORKED_HORSE.replace("one_call()", "first_drain_call()")
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert server.calls == 1  # the call really went out
    assert report == {"new_modules": [], "price_data_loads": 0}
