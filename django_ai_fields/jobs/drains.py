"""Drains: the live path's RQ jobs (``tasks.run_drain``). One work horse runs many
live AIJobs at once.

A drain leases the jobs handed to drains (dispatch/handover.py) in batches
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so drains on several machines never
take the same job), runs them through the chunk runner (chunks.py: up to
``CONCURRENCY`` provider calls in flight), refills its free slots from the jobs
still waiting, and exits when none is left, or after ``DRAIN_SECONDS``, handing on
to a fresh drain. Running chunks take waiting live jobs first too, so a backfill
never makes a live save wait for a free worker.

A drain that has room and nothing to take *listens* (``Listener``, RQ only, when
``DRAIN_LINGER`` > 0): it holds the waiting-drain mark, so a commit hands its jobs
to it and wakes it through Redis (``handover.to_drain``) instead of enqueuing a new
drain, and the job's call starts within milliseconds, on this warm work horse. Once
nothing is left it lingers ``DRAIN_LINGER`` seconds for such a wake-up, then
releases the mark, looks once more (a commit may have marked jobs for it just
before) and exits. It stops listening as soon as its slots are full (commits then
request a companion drain for another worker) and stops lingering as soon as other
tasks wait on the queue (a backfill's chunk, another drain), so a lingering drain
never keeps a worker from work. A listening drain that falls behind (its one
thread busy while woken jobs wait) requests another drain and lets the commits go
to it, so live traffic spreads over the workers as before.

Every per-job guarantee is the engine's, unchanged: the run-token lease, the
stale-input guard, quotas, breaker, rate limits, retries (a job waiting for a
delayed retry is not a drain's to take) and the sweep, which hands jobs nobody
took to a drain again.

A drain runs inside its job context (database, schema: dispatch/context.py) and
takes only the jobs handed to drains of that context; it looks for them on the
database decisions are made on (the primary), never on a replica that may lag.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, wait
from datetime import timedelta

from django.db import connections, transaction
from django.db.models import QuerySet
from django.utils import timezone

from ..conf import get_setting
from ..databases import for_decisions
from ..dispatch import backend, context, handover, transitions
from ..models import AIJob, Phase, Status
from .chunks import ChunkRun


def waiting_jobs() -> QuerySet[AIJob]:
    """Jobs handed to a drain of this context. Not a drain's: pending jobs (the
    outbox's, handed over on commit or by the sweep), jobs waiting for a delayed
    retry (their own RQ job), chunk jobs (their chunk runs them), jobs run
    in-process (``sync=True``) and jobs inside a provider batch."""
    prefix = handover.drain_prefix(context.current())
    return (
        AIJob.objects.db_manager(for_decisions(AIJob))
        .filter(status=Status.QUEUED, rq_job_id__startswith=prefix, run_token="")
        .exclude(phase=Phase.BATCH)
    )


def lease_waiting(room: int) -> list[AIJob]:
    """Lease up to ``room`` waiting jobs, oldest first: in one statement on
    PostgreSQL; in a transaction with ``SKIP LOCKED`` where the database has it
    (MariaDB); else by a conditional ``UPDATE`` that a concurrent drain may win."""
    waiting = waiting_jobs()
    if connections[waiting.db].vendor == "postgresql":
        return transitions.lease_first(waiting, room, task_id=backend.current_task_id())
    while True:
        candidates = waiting.order_by("pk")
        if connections[candidates.db].features.has_select_for_update_skip_locked:
            with transaction.atomic(using=candidates.db):
                locked = candidates.select_for_update(skip_locked=True)
                ids = list(locked.values_list("pk", flat=True)[:room])
                return lease_still_waiting(ids) if ids else []
        ids = list(candidates.values_list("pk", flat=True)[:room])
        if not ids:
            return []
        # Still waiting in the UPDATE: between the SELECT and it, another drain may
        # have run a job and put it back for a delayed retry, no drain's to take.
        leased = lease_still_waiting(ids)
        if leased:
            return leased
        # Another drain leased these between our SELECT and UPDATE: look again.


def lease_still_waiting(ids: list[int]) -> list[AIJob]:
    """Lease these jobs if they still wait for a drain."""
    return transitions.lease(ids, task_id=backend.current_task_id(), among=waiting_jobs())


# Seconds between a lingering drain's looks at the queue for other tasks, and between
# renewals of its listening mark.
LINGER_CHECK = 0.25
RENEW_EVERY = 0.5
# A listening drain that leases a job handed over longer ago than this has fallen
# behind: it hands the next commits to another drain (lease_and_share).
BEHIND_SECONDS = 0.1


class Listener:
    """A running drain's ear for commits (see the module's docstring). The wake-ups
    arrive on a thread of their own, blocked on Redis, and complete ``signal``, which
    the drain waits on together with its provider calls."""

    def __init__(self, drain_id: str, linger: float) -> None:
        self.drain_id = drain_id
        self.linger = linger
        self.listening = False
        self.since = timezone.now()  # when it last began to listen
        self.last_job = time.monotonic()  # when it last took a job
        self.idle_from = 0.0  # when it became idle after its last job: the linger counts from it
        self.finished = False
        self.closed = threading.Event()
        self.lock = threading.Lock()
        self.signal: Future[None] = Future()
        self.thread: threading.Thread | None = None

    def listen(self, holding: bool = False) -> bool:
        """Hold the mark if no other drain does (``holding``: it was just handed
        over as the drain started): commits then wake this one."""
        if not self.listening and not self.finished:
            self.listening = holding or handover.listen(self.drain_id)
            self.since = timezone.now()
            if self.listening and self.thread is None:
                self.thread = threading.Thread(
                    target=self.hear, daemon=True, args=(context.current(),)
                )
                self.thread.start()
        return self.listening

    def stop(self) -> None:
        """Release the mark (the drain must look for jobs once more afterwards)."""
        if self.listening:
            self.listening = False
            handover.stop_listening(self.drain_id)

    def close(self) -> None:
        self.finished = True
        self.stop()
        self.closed.set()

    def hear(self, here: context.Context) -> None:
        """The listening thread: completes ``signal`` on each wake-up, and renews the mark."""
        with context.restore(here), closing_connections():
            while not self.closed.is_set():
                try:
                    woke = handover.wait_for_jobs(self.drain_id, RENEW_EVERY)
                    if self.listening and not handover.keep_listening(self.drain_id):
                        self.listening, woke = False, True  # lost the mark: look and listen again
                except Exception:  # Redis gone: the drain's own looks go on
                    self.listening, woke = False, True
                    self.closed.wait(RENEW_EVERY)
                if woke:
                    self.wake()

    def wake(self) -> None:
        with self.lock:
            if not self.signal.done():
                self.signal.set_result(None)

    def behind(self, leased: list[AIJob]) -> bool:
        """Whether a job handed over while this drain listened waited longer than
        ``BEHIND_SECONDS`` for this lease (woken, but its thread was busy). Jobs that
        waited before it listened (a backlog it started with) do not count."""
        late = timezone.now() - timedelta(seconds=BEHIND_SECONDS)
        return any(
            job.enqueued_at is not None and self.since <= job.enqueued_at < late for job in leased
        )

    def take_signal(self) -> bool:
        """True (and ready for the next one) when a wake-up came."""
        with self.lock:
            if not self.signal.done():
                return False
            self.signal = Future()
            return True

    def idle(self, until: float) -> bool:
        """Nothing runs and nothing waits: linger for a wake-up until ``DRAIN_LINGER``
        passes (or ``until``, or other tasks wait). True: look for jobs again (woken,
        or once more after releasing the mark); False: the drain may end."""
        if self.finished or not self.listen():
            return False
        # From becoming idle after the last job, not from the last wake-up: wake-ups
        # without jobs (a mark lost and taken again, Redis errors) never stretch it.
        if self.idle_from < self.last_job:
            self.idle_from = time.monotonic()
        deadline = min(self.idle_from + self.linger, until)
        while (left := deadline - time.monotonic()) > 0:
            wait([self.signal], timeout=min(LINGER_CHECK, left))
            if self.take_signal():
                return True
            if backend.others_waiting():
                break
        self.close()
        return True


@contextlib.contextmanager
def closing_connections() -> Iterator[None]:
    """This thread's database connections (a cache-backed shared state's) closed after."""
    try:
        yield
    finally:
        connections.close_all()


def lease_and_share(room: int, listener: Listener | None = None) -> list[AIJob]:
    """A drain's source: ``lease_waiting``, and when the jobs fill its free slots
    with more still waiting, request another drain, so an idle worker joins in
    rather than one work horse taking a whole burst (one drain waits at most).

    A listening drain listens while it has room to spare and keeps up. It stops when
    its slots are full, or when it falls behind (a job it leases waited longer than
    ``BEHIND_SECONDS``: its one thread is the bottleneck), and then requests another
    drain: the next commits go to that one, on another worker, while this one
    finishes its calls and takes what still waits."""
    leased = lease_waiting(room)
    if listener is not None and leased:
        listener.last_job = time.monotonic()
    full = len(leased) == room
    behind = listener is not None and listener.listening and listener.behind(leased)
    if listener is not None and (full or behind):
        listener.stop()
    if (full and waiting_jobs().exists()) or behind:
        handover.request_drain()
    elif listener is not None and not full:
        listener.listen()
    return leased


def linger_seconds() -> float:
    """``DRAIN_LINGER``, or 0 where the task backend cannot wake a running drain."""
    seconds = float(get_setting("DRAIN_LINGER") or 0)
    return seconds if seconds > 0 and backend.can_wake() else 0.0


def drain() -> dict[str, int]:
    """Run waiting live jobs until none is left (and none came while it lingered);
    returns how many ended in each status."""
    seconds = float(get_setting("DRAIN_SECONDS"))
    linger, drain_id = linger_seconds(), backend.current_task_id()
    listener = Listener(drain_id, linger) if linger and drain_id else None
    # From now on a commit requests the next drain, or wakes this one.
    if handover.drain_started(listen=listener is not None) and listener is not None:
        listener.listen(holding=True)
    source = lease_and_share if listener is None else (lambda room: lease_and_share(room, listener))
    run = ChunkRun([], source=source, source_seconds=seconds, listener=listener)
    try:
        outcome = run.run()
    finally:
        if listener is not None:
            listener.close()
    if run.source_stopped and waiting_jobs().exists():
        handover.request_drain()  # its time is up: a fresh work horse goes on
    return outcome
