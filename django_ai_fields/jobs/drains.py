"""Drains: the live path's RQ jobs (``tasks.run_drain``). One work horse runs many
live AIJobs at once.

A drain leases the jobs handed to drains (dispatch/handover.py) in batches
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so drains on several machines never
take the same job), runs them through the chunk runner (chunks.py: up to
``CONCURRENCY`` provider calls in flight), refills its free slots from the jobs
still waiting, and exits when none is left, or after ``DRAIN_SECONDS``, handing on
to a fresh drain. Running chunks take waiting live jobs first too, so a backfill
never makes a live save wait for a free worker.

Every per-job guarantee is the engine's, unchanged: the run-token lease, the
stale-input guard, quotas, breaker, rate limits, retries (a job waiting for a
delayed retry is not a drain's to take) and the sweep, which hands jobs nobody
took to a drain again.

A drain runs inside its job context (database, schema: dispatch/context.py) and
takes only the jobs handed to drains of that context; it looks for them on the
database decisions are made on (the primary), never on a replica that may lag.
"""

from __future__ import annotations

from django.db import connections, transaction
from django.db.models import QuerySet

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
    """Lease up to ``room`` waiting jobs, oldest first."""
    while True:
        candidates = waiting_jobs().order_by("pk")
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


def lease_and_share(room: int) -> list[AIJob]:
    """A drain's source: ``lease_waiting``, and when the jobs fill its free slots
    with more still waiting, request another drain, so an idle worker joins in
    rather than one work horse taking a whole burst (one drain waits at most)."""
    leased = lease_waiting(room)
    if len(leased) == room and waiting_jobs().exists():
        handover.request_drain()
    return leased


def drain() -> dict[str, int]:
    """Run waiting live jobs until none is left; returns how many ended in each status."""
    handover.drain_started()  # from now on a commit requests the next drain
    seconds = float(get_setting("DRAIN_SECONDS"))
    run = ChunkRun([], source=lease_and_share, source_seconds=seconds)
    outcome = run.run()
    if run.source_stopped and waiting_jobs().exists():
        handover.request_drain()  # its time is up: a fresh work horse goes on
    return outcome
