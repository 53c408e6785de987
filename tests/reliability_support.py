"""Helpers shared by the reliability tests (circuits, fallbacks, bad input, recovery)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from django.db.models.signals import post_init
from django.utils import timezone

from django_ai_fields.api import regenerate
from django_ai_fields.models import AIJob, AIUsage
from django_ai_fields.queues import get_queue
from tests.fake_provider import RecordedRequest
from tests.testapp.models import Lead


def configure(settings: Any, **values: Any) -> None:
    settings.AI_FIELDS = {**settings.AI_FIELDS, **values}


def set_provider_timeout(settings: Any, seconds: float) -> None:
    providers = settings.AI_FIELDS["PROVIDERS"]
    configure(
        settings, PROVIDERS={name: {**cfg, "TIMEOUT": seconds} for name, cfg in providers.items()}
    )


def make_lead(**values: Any) -> Lead:
    """A lead saved without signals, so it has no job yet."""
    values = {"name": "Ada", "company": "Acme", "notes": "Wants 20 seats", **values}
    (lead,) = Lead.objects.bulk_create([Lead(**values)])
    return lead


def on_next_lead_load(action: Callable[[], None], uid: str) -> Iterator[Callable[[], None]]:
    """For a fixture (``yield from``): yields a function that arms ``action`` to run
    once, when the engine next loads a Lead (its PREP)."""
    armed: list[bool] = []

    def fire(**kwargs: Any) -> None:
        if armed:
            armed.clear()
            action()

    post_init.connect(fire, sender=Lead, weak=False, dispatch_uid=uid)
    yield lambda: armed.append(True)
    post_init.disconnect(sender=Lead, dispatch_uid=uid)


def job_for(field_name: str, **values: Any) -> tuple[Lead, AIJob]:
    lead = make_lead(**values)
    return lead, regenerate(lead, field_name)


def fresh(job: AIJob) -> AIJob:
    return AIJob.objects.get(pk=job.pk)


def calls_of(job: AIJob) -> list[tuple[str, str, str]]:
    """(provider, model, error_code) of each AIUsage row of the job, oldest first."""
    rows = AIUsage.objects.filter(job=job).order_by("pk")
    return list(rows.values_list("provider", "model", "error_code"))


def scheduled_in(job: AIJob) -> float:
    """Seconds until the job's RQ job is due in the scheduled registry."""
    job = fresh(job)
    registry = get_queue().scheduled_job_registry
    assert job.rq_job_id in registry.get_job_ids()
    return (registry.get_scheduled_time(job.rq_job_id) - timezone.now()).total_seconds()


def messages(request: RecordedRequest) -> tuple[str, str]:
    """(system, user) text of an OpenAI chat completions request."""
    system, user = request.body["messages"]
    return system["content"], user["content"]


def max_tokens_of(request: RecordedRequest) -> int:
    body = request.body
    return int(body.get("max_completion_tokens") or body.get("max_tokens"))
