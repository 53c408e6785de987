"""Every task entry point of the app, and the one wrapper they all start through.

The queue stores a task as its dotted path (``django_ai_fields.jobs.tasks.run_job``);
the layers below send these by that path (``queues.RUN_JOB`` ..., through
dispatch.backend), never by importing this module, so the jobs layer stays on top
of the ones it uses. ``entry_point`` is the one place where a task starts in the
worker: what a task needs restored before it touches the database happens there
(its job context: database, schema, dispatch/context.py).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from django.db import close_old_connections, connection

from ..calling.pipeline import drive
from ..dispatch import backend
from ..dispatch import context as job_context
from ..dispatch.context import Context
from ..dispatch.handover import chunk_timeout
from ..queues import PERIODIC_POLL, PERIODIC_SWEEP, RUN_CHUNK, RUN_DRAIN, RUN_JOB
from . import batches, drains, engine, sweep
from .chunks import ChunkRun

R = TypeVar("R")


def entry_point(func: Callable[..., R]) -> Callable[..., R]:
    """An RQ entry point: drop the worker's dead database connection first (a
    long-lived worker may hold one from before a database restart), then run the
    task inside the job context it carries (keyword ``context``; without one, the
    context here: an in-process call runs where its caller is)."""

    @functools.wraps(func)
    def run(*args: Any, context: Context | None = None, **kwargs: Any) -> R:
        if not connection.in_atomic_block:
            close_old_connections()
        with job_context.restore(context):
            return func(*args, **kwargs)

    return run


@entry_point
def run_job(job_id: int) -> str:
    """One AIJob from lease to final status. Returns it (or "skipped")."""
    try:
        return drive(engine.job_pipeline(job_id))
    finally:
        sweep.schedule_sweep()


@entry_point
def run_chunk(job_ids: Sequence[int]) -> dict[str, int]:
    """Many AIJobs, their provider calls concurrent; returns how many ended in each
    status. On a worker, live jobs waiting for a drain come first while the chunk
    has time to spare: a backfill occupying every worker must not make a live save
    wait. Called in-process (``api.regenerate(sync=True)``), it runs only its own."""
    source = drains.lease_waiting if backend.current_task_id() is not None else None
    spare = chunk_timeout(len(job_ids)) / 2
    try:
        return ChunkRun(job_ids, source=source, source_seconds=spare).run()
    finally:
        sweep.schedule_sweep()


@entry_point
def run_drain() -> dict[str, int]:
    """The live path: waiting AIJobs, many at once, until none is left (drains.py)."""
    try:
        return drains.drain()
    finally:
        sweep.schedule_sweep()


def periodic_sweep() -> str:
    """The worker's periodic job: sweep, then schedule the next run. Only the run
    the mark names re-arms, so late or extra runs never multiply the schedule.

    A run that fails (the database down) still re-arms: while PostgreSQL restarts
    the workers fail every queued run at its lease within milliseconds, so the
    queue may be empty by the time it is back, and no later job would re-arm."""
    backend.release_own_mark(sweep.SCHEDULED_KEY)
    try:
        return _sweep()
    finally:
        sweep.schedule_sweep()


@entry_point
def _sweep() -> str:
    return str(sweep.sweep())


def periodic_poll() -> str:
    """The workers' scheduled poll of provider batches; schedules the next one
    while batches stay open."""
    backend.release_own_mark(batches.POLL_KEY)
    try:
        return _poll()
    finally:
        with contextlib.suppress(Exception):  # the database is down: the sweep re-arms
            batches.keep_polling()


@entry_point
def _poll() -> str:
    return str(batches.poll())


# Every entry point by the dotted path the layers below send it by: Celery and Django's
# task framework run these same functions (celery_tasks.py, django_tasks.py).
ENTRY_POINTS: dict[str, Callable[..., object]] = {
    RUN_JOB: run_job,
    RUN_CHUNK: run_chunk,
    RUN_DRAIN: run_drain,
    PERIODIC_SWEEP: periodic_sweep,
    PERIODIC_POLL: periodic_poll,
}
