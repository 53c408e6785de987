"""Streamed provider calls: the partial answer is saved on the job as it grows.

With ``stream=True`` on a field or an AIFunction, the worker reads the answer
as the provider sends it and writes the text received so far to
``AIJob.partial_output`` at most every ``STREAM_SAVE_INTERVAL`` seconds (0.5),
with an UPDATE guarded by the run's token. The final value is parsed,
validated and written back only once the stream has ended, as without
streaming; tokens and cost come from the usage the stream reports at its end.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from django.utils import timezone

from ..conf import get_setting
from ..models import AIJob, ErrorCode
from ..providers import CompletionResponse, Provider, ProviderError

if TYPE_CHECKING:
    from .pipeline import Prepared


class PartialWriter:
    """Collects deltas; writes the text so far when ``interval`` seconds have
    passed since the stream started or since the last write."""

    def __init__(self, job: AIJob, interval: float) -> None:
        self.job = job
        self.interval = interval
        self.parts: list[str] = []
        self.last_write = time.monotonic()
        # False once the run lost its lease (sweep recovery, cancel): stop writing.
        self.live = bool(job.run_token)
        self.writes = 0

    def add(self, delta: str) -> None:
        self.parts.append(delta)
        now = time.monotonic()
        if self.live and now - self.last_write >= self.interval:
            self.write(now)

    def write(self, now: float) -> None:
        self.live = bool(
            AIJob.objects.filter(pk=self.job.pk, run_token=self.job.run_token).update(
                partial_output="".join(self.parts), updated_at=timezone.now()
            )
        )
        self.last_write = now
        self.writes += 1


def complete(job: AIJob, prepared: Prepared, provider: Provider) -> CompletionResponse:
    """One provider call: ``provider.complete()``, or its stream when the function
    streams. Raises ProviderError like ``complete()``."""
    if not prepared.function.options.stream:
        return provider.complete(prepared.request)
    writer = PartialWriter(job, float(get_setting("STREAM_SAVE_INTERVAL")))
    response: CompletionResponse | None = None
    for item in provider.stream(prepared.request):
        if isinstance(item, CompletionResponse):
            response = item
        else:
            writer.add(item)
    if response is None:
        raise ProviderError(
            ErrorCode.PROVIDER_UNAVAILABLE, "The stream ended without its final message."
        )
    return response
