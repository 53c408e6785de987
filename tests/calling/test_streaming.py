"""Issue #7 item 3: streamed answers, partial text on the job, the final value at the end.

Tests that watch the worker's queries in this process run ``run_job`` here
(in real-services mode too); the others drain through the real worker.
"""

from __future__ import annotations

import itertools
import json
import re
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_ai_fields.api import regenerate, run_ai_task
from django_ai_fields.conf import get_setting
from django_ai_fields.jobs.sweep import sweep
from django_ai_fields.jobs.tasks import run_job
from django_ai_fields.models import AIJob, AIUsage, Status
from django_ai_fields.providers import CompletionRequest, CompletionResponse, Provider
from django_ai_fields.providers.offline import OfflineProvider
from tests.fake_provider import FakeProvider, Usage
from tests.surfaces import make_user
from tests.testapp.models import Lead, Story

pytestmark = pytest.mark.django_db(transaction=True)

WORDS = " ".join(f"word{n}" for n in range(1, 13))  # 12 text deltas
FACTS = {"facts": ["Ada wrote the first program", "She worked with Babbage"]}


# --------------------------------------------------------------------------- helpers


@contextmanager
def partial_writes() -> Iterator[list[tuple[float, str]]]:
    """(monotonic time, text) of every partial-text UPDATE this thread's connection runs."""
    writes: list[tuple[float, str]] = []

    def record(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        if sql.startswith('UPDATE "django_ai_fields_aijob" SET "partial_output" = '):
            writes.append((time.monotonic(), params[0]))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        yield writes


@contextmanager
def story_updates() -> Iterator[list[str]]:
    """Every UPDATE this thread's connection runs, in order (SQL only)."""
    updates: list[str] = []

    def record(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        if sql.startswith("UPDATE"):
            updates.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        yield updates


def story_job(story: Story) -> AIJob:
    return AIJob.objects.filter(object_id=str(story.pk), field_name="text").latest("pk")


def use_provider(settings: Any, name: str) -> None:
    settings.AI_FIELDS = {**settings.AI_FIELDS, "DEFAULT_PROVIDER": name}


def wait_for(condition: Callable[[], Any], seconds: float = 30) -> Any:
    """Poll until ``condition()`` is truthy (returns it); fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail("condition not met in time")


def in_background(action: Callable[[], Any]) -> threading.Thread:
    def run() -> None:
        try:
            action()
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


# --------------------------------------------------------------------------- the field option


def test_stream_option_is_kept_out_of_migrations():
    field = Story._meta.get_field("text")
    assert field.ai.stream is True
    assert "stream" not in field.deconstruct()[3]
    assert Lead._meta.get_field("summary").ai.stream is False


def test_streamed_field_saves_partial_text_at_most_every_half_second(fake_provider):
    fake_provider.reply_text = WORDS
    fake_provider.stream_delay = 0.15  # 12 deltas: the stream lasts at least 1.8 s
    fake_provider.usage = Usage(input_tokens=321, output_tokens=54)
    story = Story.objects.create(title="Ada")
    job = story_job(story)

    with partial_writes() as writes, story_updates() as updates:
        assert run_job(job.pk) == Status.SUCCEEDED

    # Throttled: several writes while the answer grew, never two within 0.5 s.
    assert 2 <= len(writes) < 12
    times = [at for at, _text in writes]
    assert all(later - earlier >= 0.5 for earlier, later in itertools.pairwise(times))
    texts = [text for _at, text in writes]
    assert all(WORDS.startswith(text) and text for text in texts)
    assert texts == sorted(texts, key=len) and len(set(texts)) == len(texts)
    # The row is written once, after every partial write.
    story_writes = [i for i, sql in enumerate(updates) if '"testapp_story"' in sql]
    assert len(story_writes) == 1
    last_partial = max(i for i, sql in enumerate(updates) if 'SET "partial_output"' in sql)
    assert story_writes[0] > last_partial

    story.refresh_from_db()
    job.refresh_from_db()
    assert story.text == WORDS
    assert (job.status, job.output, job.partial_output) == ("succeeded", WORDS, "")
    # Tokens come from the stream's final usage chunk.
    usage = AIUsage.objects.get(job=job)
    assert (usage.input_tokens, usage.output_tokens, usage.success) == (321, 54, True)
    assert (job.input_tokens, job.output_tokens) == (321, 54)
    assert usage.cost_usd > 0
    body = fake_provider.last_request.body
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


def test_a_short_stream_costs_no_partial_write(fake_provider):
    fake_provider.reply_text = "Quick answer."
    story = Story.objects.create(title="Ada")
    with partial_writes() as writes:
        assert run_job(story_job(story).pk) == Status.SUCCEEDED
    assert writes == []
    story.refresh_from_db()
    assert story.text == "Quick answer."


def test_fields_without_stream_make_plain_calls(fake_provider):
    lead = Lead.objects.create(name="Ada", company="Acme")
    run_job(regenerate(lead, "summary").pk)
    assert "stream" not in fake_provider.last_request.body


def test_partial_text_shows_in_the_json_detail_and_the_badge_while_running(fake_provider, worker):
    fake_provider.reply_text = WORDS + " " + WORDS
    fake_provider.stream_delay = 0.1  # 24 deltas: at least 2.4 s
    story = Story.objects.create(title="Ada")
    job = story_job(story)
    # A real rqworker process with real services; the engine in a thread otherwise.
    background = in_background(worker.drain if worker.real else lambda: run_job(job.pk))

    running = wait_for(
        lambda: AIJob.objects.filter(pk=job.pk, status="running").exclude(partial_output="").first()
    )
    client = Client()
    client.force_login(make_user("root", superuser=True))
    detail = client.get(reverse("django_ai_fields:job-detail", args=[job.pk])).json()
    status_url = reverse("django_ai_fields:row-status", args=["testapp.story", story.pk, "text"])
    badge = client.get(status_url).json()["html"]
    story.refresh_from_db()
    background.join(timeout=60)

    assert detail["status"] == "running"
    assert detail["partial_output"].startswith(running.partial_output)
    assert WORDS.startswith(running.partial_output.strip())
    assert "ai-status--streaming" in badge
    assert 'class="ai-status__partial"' in badge and "word1 " in badge
    assert story.text is None  # the value is written only at the end
    story.refresh_from_db()
    job.refresh_from_db()
    assert story.text == WORDS + " " + WORDS
    assert (job.status, job.partial_output) == ("succeeded", "")
    final = client.get(status_url).json()["html"]
    assert "ai-status__partial" not in final and "ai-status--succeeded" in final


def test_a_run_that_loses_its_lease_stops_writing_partial_text(fake_provider):
    fake_provider.reply_text = WORDS
    fake_provider.stream_delay = 0.15
    story = Story.objects.create(title="Ada")
    job = story_job(story)
    results: list[str] = []
    background = in_background(lambda: results.append(run_job(job.pk)))
    wait_for(lambda: AIJob.objects.filter(pk=job.pk).exclude(partial_output="").exists())
    # The sweep takes the job as lost (as if its worker had died) and requeues it.
    later = timezone.now() + timedelta(seconds=get_setting("JOB_TIMEOUT") + 1)
    assert sweep(now=later).recovered == 1
    seen = AIJob.objects.get(pk=job.pk).partial_output
    background.join(timeout=60)

    assert results == ["lease-lost"]
    job.refresh_from_db()
    assert job.status == "queued" and job.partial_output == seen  # no write after the loss
    story.refresh_from_db()
    assert story.text is None
    assert AIUsage.objects.filter(job=job, success=True).count() == 1  # the call is logged


# --------------------------------------------------------------------------- functions, JSON


@pytest.mark.parametrize(
    ("provider", "input_tokens"),
    [("openai", 100 + 20), ("anthropic", 100 + 20 + 5)],
)
def test_streamed_function_returns_validated_json(
    fake_provider, worker, settings, provider, input_tokens
):
    use_provider(settings, provider)
    fake_provider.responder = lambda request: json.dumps(FACTS)
    fake_provider.usage = Usage(
        input_tokens=100, output_tokens=30, cached_tokens=20, cache_creation_tokens=5
    )
    job = run_ai_task("stream_facts", "Ada Lovelace", tenant="acme")
    worker.drain()

    job.refresh_from_db()
    assert (job.status, job.output) == ("succeeded", FACTS)
    usage = AIUsage.objects.get(job=job)
    assert (usage.input_tokens, usage.output_tokens, usage.cached_tokens) == (
        input_tokens,
        30,
        20,
    )
    body = fake_provider.last_request.body
    assert body["stream"] is True
    if provider == "anthropic":  # JSON through the forced tool, streamed as input_json_delta
        assert body["tool_choice"]["type"] == "tool"


def test_anthropic_streamed_text_field(fake_provider, worker, settings):
    use_provider(settings, "anthropic")
    fake_provider.reply_text = WORDS
    fake_provider.usage = Usage(input_tokens=40, output_tokens=12)
    story = Story.objects.create(title="Ada")
    worker.drain()
    story.refresh_from_db()
    assert story.text == WORDS
    usage = AIUsage.objects.get()
    assert (usage.provider, usage.input_tokens, usage.output_tokens) == ("anthropic", 40, 12)


def test_streamed_invalid_json_fails_like_a_plain_call(fake_provider, worker):
    fake_provider.reply_text = "not json at all"
    job = run_ai_task("stream_facts", "Ada")
    worker.drain()
    job.refresh_from_db()
    assert (job.status, job.error_code, job.phase) == ("failed", "invalid_output", "PARSE")
    assert job.output == "not json at all"


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("provider", "fault", "code"),
    [
        ("openai", {"stream_error": 429}, "rate_limited"),
        ("openai", {"stream_error": 500}, "provider_unavailable"),
        ("openai", {"stream_error": 400}, "bad_request"),
        ("openai", {"stream_drop": True}, "provider_unavailable"),
        ("anthropic", {"stream_error": 529}, "provider_unavailable"),
        ("anthropic", {"stream_error": 429}, "rate_limited"),
        ("anthropic", {"stream_error": 401}, "auth"),
        ("anthropic", {"stream_drop": True}, "provider_unavailable"),
        ("openai", {"status": 429}, "rate_limited"),  # refused before the stream starts
        ("anthropic", {"status": 401}, "auth"),
    ],
)
def test_errors_mid_stream_map_to_error_codes(
    fake_provider, worker, settings, provider, fault, code
):
    use_provider(settings, provider)
    settings.AI_FIELDS = {**settings.AI_FIELDS, "MAX_ATTEMPTS": 1}
    fake_provider.reply_text = WORDS
    fake_provider.enqueue_fault(**fault, stream_after=3)
    story = Story.objects.create(title="Ada")
    worker.drain()

    job = story_job(story)
    assert (job.status, job.error_code, job.partial_output) == ("failed", code, "")
    usage = AIUsage.objects.get(job=job)
    assert (usage.success, usage.error_code) == (False, code)
    story.refresh_from_db()
    assert story.text is None


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_stalled_stream_times_out(fake_provider, worker, settings, provider):
    use_provider(settings, provider)
    providers = settings.AI_FIELDS["PROVIDERS"]
    settings.AI_FIELDS = {
        **settings.AI_FIELDS,
        "MAX_ATTEMPTS": 1,
        "PROVIDERS": {**providers, provider: {**providers[provider], "TIMEOUT": 0.3}},
    }
    fake_provider.reply_text = "slow words"
    fake_provider.stream_delay = 1.0  # longer than the read timeout
    story = Story.objects.create(title="Ada")
    worker.drain()
    job = story_job(story)
    assert (job.status, job.error_code) == ("failed", "timeout")


def test_a_retryable_stream_error_retries_and_then_succeeds(fake_provider, worker):
    fake_provider.reply_text = WORDS
    fake_provider.enqueue_fault(stream_drop=True, stream_after=2)
    story = Story.objects.create(title="Ada")
    worker.drain()
    story.refresh_from_db()
    job = story_job(story)
    assert (job.status, job.attempts, story.text) == ("succeeded", 2, WORDS)
    codes = AIUsage.objects.filter(job=job).order_by("pk").values_list("error_code", flat=True)
    assert list(codes) == ["provider_unavailable", ""]


# --------------------------------------------------------------------------- providers


def request() -> CompletionRequest:
    return CompletionRequest(
        system="sys", prompt="<data>one two three four five six</data>", model="m", max_tokens=10
    )


def test_offline_provider_streams_its_answer_in_pieces():
    items = list(OfflineProvider({}).stream(request()))
    *deltas, final = items
    assert len(deltas) > 1 and all(isinstance(d, str) for d in deltas)
    assert isinstance(final, CompletionResponse)
    assert "".join(deltas) == final.text == OfflineProvider({}).complete(request()).text


def test_a_provider_without_streaming_yields_its_whole_answer():
    class Plain(Provider):
        def complete(self, request: CompletionRequest) -> CompletionResponse:
            return CompletionResponse(text="whole", input_tokens=3, output_tokens=1)

    items = list(Plain({}).stream(request()))
    assert items[0] == "whole"
    assert items[1] == CompletionResponse(text="whole", input_tokens=3, output_tokens=1)


def test_offline_streamed_field_gets_the_plain_answer(worker, settings):
    use_provider(settings, "offline")
    story = Story.objects.create(title="Ada")
    worker.drain()
    story.refresh_from_db()
    expected = OfflineProvider({}).complete(
        CompletionRequest(system="", prompt=story_job(story).prompt, model="m", max_tokens=1)
    )
    assert story.text == expected.text


def test_fake_provider_streams_openai_chunks_with_usage(fake_provider: FakeProvider):
    import openai

    fake_provider.reply_text = "a b c"
    client = openai.OpenAI(api_key="k", base_url=fake_provider.openai_base_url, max_retries=0)
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "x"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "a b c"
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == 11


# --------------------------------------------------------------------------- the docs' sample

DOCS = Path(__file__).resolve().parents[2] / "docs"


def docs_sample(page: str, test_name: str) -> str:
    """The code of the block marked ``tested-by: tests/<this file>::<test_name>`` in a page."""
    marker = f"<!-- tested-by: tests/calling/{Path(__file__).name}::{test_name} -->"
    text = (DOCS / page).read_text(encoding="utf-8")
    match = re.search(re.escape(marker) + r"\n```python\n(.*?)\n```", text, re.DOTALL)
    assert match, f"no sample marked {marker} in docs/{page}"
    return match.group(1)


def test_the_custom_streaming_provider_sample(settings, monkeypatch):
    module = types.ModuleType("myproject.providers")
    monkeypatch.setitem(sys.modules, "myproject", types.ModuleType("myproject"))
    monkeypatch.setitem(sys.modules, "myproject.providers", module)
    exec(docs_sample("streaming.md", "test_the_custom_streaming_provider_sample"), module.__dict__)
    use_provider(settings, "myproject.providers.EchoProvider")
    story = Story.objects.create(title="Ada")
    job = story_job(story)
    assert run_job(job.pk) == Status.SUCCEEDED  # in this process: the module lives here

    story.refresh_from_db()
    job.refresh_from_db()
    assert story.text == job.prompt  # the echo of the rendered prompt
    usage = AIUsage.objects.get(job=job)
    assert (usage.provider, usage.output_tokens) == (
        "myproject.providers.EchoProvider",
        len(job.prompt.split(" ")),
    )
