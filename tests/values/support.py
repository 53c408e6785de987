"""Helpers of the values tests: answers per field, jobs of a row."""

from __future__ import annotations

import json
import re
from typing import Any

from django.db.models import Model

from django_ai_fields.models import AIJob
from tests.fake_provider import FakeProvider, RecordedRequest


def field_of(request: RecordedRequest) -> str:
    """Which AI field a recorded request is for (named in the system message)."""
    system = request.body["messages"][0]["content"]
    return re.search(r'field "([^"]+)"', system).group(1)  # type: ignore[union-attr]


def offer_answers(fp: FakeProvider, round_: list[int] | None = None) -> None:
    """Answers for Offer's fields: a pitch naming the round, a tier, facts."""
    round_ = round_ if round_ is not None else [1]

    def reply(request: RecordedRequest) -> str:
        field = field_of(request)
        if field == "tier":
            return "gold"
        if field == "facts":
            return json.dumps({"seats": 10 * round_[0]})
        return f"pitch {round_[0]}"

    fp.responder = reply


def jobs_of(obj: Model, field_name: str) -> list[AIJob]:
    return list(AIJob.objects.filter(object_id=str(obj.pk), field_name=field_name).order_by("pk"))


def latest(obj: Model, field_name: str) -> AIJob:
    return jobs_of(obj, field_name)[-1]


class Received:
    """Records a signal's calls (the receiver stays connected while in use)."""

    def __init__(self, signal: Any) -> None:
        self.signal = signal
        self.calls: list[dict[str, Any]] = []

    def __call__(self, sender: Any, **kwargs: Any) -> None:
        self.calls.append(kwargs)

    def __enter__(self) -> Received:
        self.signal.connect(self, weak=False)
        return self

    def __exit__(self, *exc: object) -> None:
        self.signal.disconnect(self)
