"""Chunk jobs: one RQ job runs many AI jobs, their provider calls concurrently.

Backfills (``ai_regenerate``, ``regenerate()`` on a queryset) enqueue their
AIJobs in chunks of ``CHUNK_SIZE`` (the entry point is tasks.run_chunk); the live
path's drains (drains.py) are chunk runs without ids of their own, filled from the
jobs waiting for a drain, which a running chunk also takes first while it has time
to spare. A chunk runs each job's pipeline (engine.py) in the worker's own thread,
so every database query, quota reservation, circuit breaker and rate-limit check
happens there, one at a time, exactly as for a single job. Only the provider calls
leave that thread: they go to an asyncio event loop in a second thread and run
through the SDKs' async clients, at most ``CONCURRENCY`` in flight per chunk. When
a call answers, its pipeline resumes in the worker's thread.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from django.utils import timezone
from rq.timeouts import JobTimeoutException

from ..calling.pipeline import Pipeline, ProviderCall
from ..conf import get_setting
from ..dispatch import backend, handover, transitions
from ..generation import preloaded_rows
from ..models import AIJob, Status
from ..providers.loop import call_loop
from .engine import leased_job_pipeline

if TYPE_CHECKING:
    from ..providers import CompletionResponse

logger = logging.getLogger("django_ai_fields")

# Seconds between touches of the chunk's not-yet-started jobs: the sweep takes a
# queued job untouched for PENDING_GRACE whose RQ job already started as lost.
HEARTBEAT = 5.0
# Seconds between the interpreter's thread switches while a chunk runs (see run()).
SWITCH_INTERVAL = 0.0005
# Seconds between looks at a source that had nothing at the last look.
DRY_SOURCE_POLL = 0.05


class Listening(Protocol):
    """A drain's ear for commits (drains.Listener): ``signal`` completes on a wake-up."""

    signal: Future[None]

    def take_signal(self) -> bool: ...

    def idle(self, until: float) -> bool: ...

    def stop(self) -> None: ...


def concurrency() -> int:
    return max(1, int(get_setting("CONCURRENCY")))


class ChunkRun:
    """Runs AIJobs with up to CONCURRENCY provider calls in flight: its own
    ``job_ids``, and first whatever ``source(room)`` leases (the live jobs waiting
    for a drain, drains.py) during its first ``source_seconds``. A run without ids
    (a drain) goes on until the source has nothing left."""

    def __init__(
        self,
        job_ids: Sequence[int],
        *,
        source: Callable[[int], list[AIJob]] | None = None,
        source_seconds: float = 0.0,
        listener: Listening | None = None,
    ) -> None:
        self.waiting = deque(job_ids)
        self.limit = concurrency()
        self.in_flight: dict[Future[CompletionResponse], Pipeline[str]] = {}
        self.outcome: Counter[str] = Counter()
        self.touched = time.monotonic()
        self.source = source
        self.source_until = time.monotonic() + source_seconds
        # The source gave nothing at the last look (a drain ends when nothing is in flight).
        self.source_dry = source is None
        self.source_looked = 0.0
        self.drains = not job_ids
        self.listener = listener

    @property
    def source_stopped(self) -> bool:
        """True once the source's time is up."""
        return self.source is not None and time.monotonic() >= self.source_until

    def run(self) -> dict[str, int]:
        switch_interval = sys.getswitchinterval()
        # Each query's answer makes this thread wait for the GIL held by the call
        # thread, up to the switch interval (5 ms): longer than the query itself.
        sys.setswitchinterval(SWITCH_INTERVAL)
        try:
            while self.busy() or self.linger():
                self.start_jobs()
                self.resume_answered()
                self.keep_waiting_jobs_alive()
        except BaseException as exc:  # RQ's timeout, a shutdown, the database gone
            self.hand_back(exc)
            raise
        finally:
            sys.setswitchinterval(switch_interval)
        return dict(self.outcome)

    def busy(self) -> bool:
        return bool(self.waiting or self.in_flight or (self.drains and not self.source_dry))

    def linger(self) -> bool:
        """A listening drain with nothing left waits for a commit's wake-up."""
        if self.listener is None or self.source_stopped:
            return False
        return self.woken(self.listener.idle(self.source_until))

    def woken(self, woke: bool) -> bool:
        """After a wake-up, the source is looked at once, at once."""
        if woke:
            self.source_dry, self.source_looked = False, 0.0
        return woke

    def start_jobs(self) -> None:
        """Lease as many jobs as there is room for, in one query, and run each up
        to its first provider call."""
        self.start_from_source()
        while self.waiting and len(self.in_flight) < self.limit:
            room = self.limit - len(self.in_flight)
            ids = [self.waiting.popleft() for _ in range(min(room, len(self.waiting)))]
            leased = transitions.lease(ids, task_id=backend.current_task_id())
            if len(leased) < len(ids):
                self.outcome["skipped"] += len(ids) - len(leased)
            with preloaded_rows(leased):  # their rows in bulk, not one query per job
                for job in leased:
                    pipeline = leased_job_pipeline(job)
                    self.advance(pipeline, partial(next, pipeline))

    def start_from_source(self) -> None:
        room = self.limit - len(self.in_flight)
        if self.source is None or room <= 0:
            return
        if self.source_stopped:
            self.source_dry = True
            if self.listener is not None:
                self.listener.stop()  # commits now request a fresh drain
            return
        if self.source_dry and time.monotonic() - self.source_looked < DRY_SOURCE_POLL:
            return
        leased = self.source(room)
        self.source_looked = time.monotonic()
        self.source_dry = not leased
        with preloaded_rows(leased):
            for job in leased:
                pipeline = leased_job_pipeline(job)
                self.advance(pipeline, partial(next, pipeline))

    def resume_answered(self) -> None:
        if not self.in_flight:
            return
        waited: set[Future[Any]] = set(self.in_flight)
        if self.listener is not None:  # a commit's wake-up ends the wait too
            waited.add(self.listener.signal)
        done, _ = wait(waited, timeout=HEARTBEAT, return_when=FIRST_COMPLETED)
        if self.listener is not None:
            self.woken(self.listener.take_signal())
        for future in done:
            if future not in self.in_flight:
                continue
            pipeline = self.in_flight.pop(future)
            try:
                response = future.result()
            except Exception as exc:  # delivered where the pipeline waits for the call
                self.advance(pipeline, partial(pipeline.throw, exc))
            else:
                self.advance(pipeline, partial(pipeline.send, response))

    def advance(self, pipeline: Pipeline[str], step: Callable[[], ProviderCall]) -> None:
        """Run the pipeline in this thread up to its next provider call, which
        starts in the background, or to its end."""
        try:
            call = step()
        except StopIteration as done:
            self.outcome[str(done.value)] += 1
            return
        self.in_flight[start_call(call)] = pipeline

    def keep_waiting_jobs_alive(self) -> None:
        if not self.waiting or time.monotonic() - self.touched < HEARTBEAT:
            return
        AIJob.objects.filter(pk__in=list(self.waiting), status=Status.QUEUED).update(
            updated_at=timezone.now()
        )
        self.touched = time.monotonic()

    def hand_back(self, exc: BaseException) -> None:
        """The chunk stops early: jobs it had not started go back to the queue; jobs
        waiting for a call get RQ's timeout (retried like a timed-out call) or are
        left running for the sweep to recover."""
        for future, pipeline in list(self.in_flight.items()):
            future.cancel()
            try:
                if isinstance(exc, JobTimeoutException):
                    self.advance(pipeline, partial(pipeline.throw, exc))
                else:
                    pipeline.close()
            except Exception:
                logger.exception("AI chunk: could not hand back a job")
        self.in_flight.clear()
        if self.waiting:
            try:
                handover.to_chunks(list(self.waiting))
            except Exception:
                logger.exception("AI chunk: %s jobs left for the sweep", len(self.waiting))


def start_call(call: ProviderCall) -> Future[CompletionResponse]:
    """A future for the call's answer. Streamed calls write their partial text to
    the database as it arrives, so they run here, in the worker's thread."""
    if not call.streams:
        return asyncio.run_coroutine_threadsafe(call.arun(), call_loop())
    future: Future[CompletionResponse] = Future()
    try:
        future.set_result(call.run())
    except (Exception, JobTimeoutException) as exc:
        future.set_exception(exc)
    return future
