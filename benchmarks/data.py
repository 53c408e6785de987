"""Rows and jobs the scenarios work on."""

from __future__ import annotations

from typing import Any

from django.db import models

from django_ai_fields.models import AIJob, AIUsage
from tests.testapp.models import Article, Lead, PlainLead

from .workers import get_queue


def lead_values(i: int) -> dict[str, Any]:
    """One row of the Lead / PlainLead pair; AI columns filled, as after a backfill."""
    return {
        "name": f"Lead {i}",
        "company": f"Company {i % 97}",
        "notes": f"Wants {i % 50} seats; met at trade fair {i % 13}.",
        "ssn": "123-45-6789",
        "score": i % 100,
        "summary": f"Lead {i} at Company {i % 97}, interested in about {i % 50} seats.",
        "heat": ("hot", "warm", "cold")[i % 3],
        "profile": {"industry": "software", "employees": i % 500},
    }


def fill(model: type[models.Model], rows: int) -> None:
    """Insert rows without signals (no jobs), as a data import would."""
    if model is Article:
        objs = [Article(title=f"Article {i}", body="Body text.") for i in range(rows)]
    else:
        objs = [model(**lead_values(i)) for i in range(rows)]
    model.objects.bulk_create(objs, batch_size=500)


def reset() -> None:
    """Empty the tables and the queue between scenarios."""
    for model in (AIUsage, AIJob, Lead, PlainLead, Article):
        model._base_manager.all().delete()
    get_queue().empty()


def statuses() -> dict[str, int]:
    counts: dict[str, int] = {}
    for status in AIJob.objects.values_list("status", flat=True):
        counts[status] = counts.get(status, 0) + 1
    return counts
