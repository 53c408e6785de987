"""Every change of an AIJob's status: the one module that writes ``AIJob.status``.

Each transition is a conditional UPDATE that changes a job only from the states
it names (a run's writes are also guarded by its run token), so two actors racing
for one job never both win. Whoever calls it, each transition logs one ``ai_job``
record (after the commit), counts in the metrics and sends its signal:
``job_requested`` when a job is opened, ``job_failed`` when one fails,
``job_completed`` (after the commit) when one succeeds.

::

    pending ──handed_over──▶ queued ──lease──▶ running ──finish──▶ succeeded | failed
       ▲  ◀──not_handed_over──┘                   │                 cancelled | superseded
       │                                          ├──requeue──▶ queued (a delayed retry)
       └───────────recover_lost (worker died)─────┘──wait_in_batch──▶ queued (BATCH)
                   (or ──▶ superseded: a newer job for the row and field exists)
    failed | cancelled ──restart──▶ pending        pending | queued ──cancel──▶ cancelled

    running ──to_review──▶ in_review ──accept──▶ succeeded     (review=True, docs/values.md)
                               ├──reject──▶ cancelled
                               └──supersede_proposals──▶ superseded (its inputs changed)
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime
from functools import partial
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import F, Field, QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .. import databases, signals
from ..codes import FINISHED_STATUSES, OPEN_STATUSES, Phase, Status
from ..models import AIJob
from ..money import quotas
from ..observability import metrics
from . import tally
from .steps import with_note, with_step

logger = logging.getLogger("django_ai_fields")

# Progress shown for each phase a run enters.
PROGRESS = {Phase.INIT: 5, Phase.PREP: 15, Phase.AI_CALL: 30, Phase.PARSE: 70, Phase.SAVE: 85}
RESTARTABLE_STATUSES = (Status.FAILED, Status.CANCELLED)


class LeaseLost(Exception):
    """Another run took this job over (sweep recovery) or it was cancelled."""


# -- opened and handed to the queue ----------------------------------------------------------


def opened(jobs: Sequence[AIJob]) -> None:
    """New or reused open jobs (the intake wrote them ``pending``)."""
    for job in jobs:
        _announce(job)
        signals.job_requested.send(sender=AIJob, job=job)


def handed_over(job_ids: Sequence[int], task_id: str) -> int:
    """Open jobs now wait on the queue for the task ``task_id`` (a drain, a chunk, a
    delayed run); a job inside a provider batch is left alone. Returns how many."""
    count = _open(AIJob.objects.filter(pk__in=job_ids)).update(
        status=Status.QUEUED, enqueued_at=timezone.now(), rq_job_id=task_id
    )
    _announce_many(job_ids, Status.QUEUED, count, task=task_id)
    return count


def not_handed_over(job_ids: Sequence[int], reason: str) -> int:
    """Jobs the queue did not take (unreachable), or whose task it lost, stay or go
    back to pending, for the sweep to hand over again. Logged even when none was
    queued: the reason is what an operator needs."""
    count = AIJob.objects.filter(pk__in=job_ids, status=Status.QUEUED).update(
        status=Status.PENDING, updated_at=timezone.now()
    )
    _announce_many(job_ids, Status.PENDING, len(job_ids), reason=reason, level=logging.WARNING)
    return count


# -- a run: lease, guarded writes, and its end -----------------------------------------------


def lease(
    job_ids: Sequence[int],
    *,
    task_id: str | None,
    batch: bool = False,
    among: QuerySet[AIJob] | None = None,
) -> list[AIJob]:
    """Take the jobs still open, in one UPDATE, and only those still in ``among`` if
    given. A job waiting in a provider batch is taken only by its batch's poll
    (``batch=True``). They share the run's token: later writes name the pk as well."""
    token = uuid.uuid4().hex
    candidates = AIJob.objects.all() if among is None else among
    open_jobs = _open(candidates.filter(pk__in=job_ids), in_batch=batch)
    taken = open_jobs.update(**_leased(token, task_id), attempts=F("attempts") + 1)
    if not taken:
        return []
    jobs = list(
        AIJob.objects.select_related("content_type").filter(pk__in=job_ids, run_token=token)
    )
    for job in jobs:
        _announce(job)
    return jobs


def lease_first(waiting: QuerySet[AIJob], room: int, *, task_id: str | None) -> list[AIJob]:
    """Lease the first ``room`` jobs of ``waiting`` (by pk) that no other transaction
    has locked, in one statement (PostgreSQL only): ``UPDATE ... WHERE pk IN (SELECT
    ... FOR UPDATE SKIP LOCKED) RETURNING``, where ``lease`` takes a transaction of
    four. The same columns as ``lease``."""
    connection = connections[waiting.db]
    column = partial(_quoted_column, connection)
    pick, pick_params = _open(waiting).order_by("pk").values("pk")[:room].query.sql_with_params()
    fields = {field.name: field for field in AIJob._meta.concrete_fields}
    leased = _leased(uuid.uuid4().hex, task_id)
    assignments = [f"{column(fields[name])} = %s" for name in leased]
    params = [fields[name].get_db_prep_save(value, connection) for name, value in leased.items()]
    attempts = column(fields["attempts"])
    sql = (
        f"UPDATE {connection.ops.quote_name(AIJob._meta.db_table)} "
        f"SET {', '.join(assignments)}, {attempts} = {attempts} + 1 "
        f"WHERE {column(AIJob._meta.pk)} IN ({pick} FOR UPDATE SKIP LOCKED) "
        f"RETURNING {', '.join(column(field) for field in fields.values())}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, *pick_params])
        rows = cursor.fetchall()
    jobs = _from_rows(waiting.db, list(fields.values()), rows)
    for job in jobs:
        _announce(job)
    return jobs


def _open(jobs: QuerySet[AIJob], *, in_batch: bool = False) -> QuerySet[AIJob]:
    """Those of ``jobs`` a run may take: open, and waiting in a provider batch only
    for that batch's poll (``in_batch``), never for anything else."""
    jobs = jobs.filter(status__in=OPEN_STATUSES)
    return jobs.filter(phase=Phase.BATCH) if in_batch else jobs.exclude(phase=Phase.BATCH)


def _quoted_column(connection: BaseDatabaseWrapper, field: Field[Any, Any]) -> str:
    assert field.column is not None  # a concrete field's
    return connection.ops.quote_name(field.column)


def _from_rows(db: str, fields: list[Field[Any, Any]], rows: list[Any]) -> list[AIJob]:
    """AIJobs from rows of ``fields``' columns, converted as the ORM converts them,
    with their content type from Django's cache (no query)."""
    compiler = AIJob.objects.db_manager(db).all().query.get_compiler(db)
    converters = compiler.get_converters([field.get_col(AIJob._meta.db_table) for field in fields])
    if converters:
        rows = list(compiler.apply_converters(rows, converters))
    names = [field.attname for field in fields]
    types = ContentType.objects.db_manager(db)
    jobs = []
    for row in rows:
        job = AIJob.from_db(db, names, row)
        if job.content_type_id is not None:
            job.content_type = types.get_for_id(job.content_type_id)
        jobs.append(job)
    return jobs


def _leased(token: str, task_id: str | None) -> dict[str, Any]:
    """The columns a lease sets (and ``attempts`` one up)."""
    task = {"rq_job_id": task_id} if task_id else {}
    return {
        "status": Status.RUNNING,
        "run_token": token,
        "started_at": timezone.now(),
        # INIT is the lease itself: the job goes straight to PREP, in this query.
        "phase": Phase.PREP,
        "progress": PROGRESS[Phase.PREP],
        "partial_output": "",
        **task,
    }


def write(job: AIJob, **columns: Any) -> None:
    """Write columns of a job while this run still holds it (a phase change adds a
    step to its log in the same query). Raises LeaseLost otherwise."""
    if "status" in columns:
        raise ValueError("A status changes through a transition of dispatch.transitions.")
    _guarded_update(job, columns)


def requeue(job: AIJob, *, use_attempt: bool, **columns: Any) -> None:
    """The run gives the job back to wait for a later run (a retry, or a wait that
    does not use an attempt): queued, with no task yet (the caller sends one)."""
    if not use_attempt:
        columns["attempts"] = F("attempts") - 1
    columns.update(rq_job_id="", run_token="")
    _guarded_update(job, {"status": Status.QUEUED, "phase": Phase.INIT, "progress": 0, **columns})


def wait_in_batch(job: AIJob, batch_id: str, progress: int) -> None:
    """The job's request went into a provider batch: it waits for the batch's poll."""
    _guarded_update(
        job,
        {
            "status": Status.QUEUED,
            "phase": Phase.BATCH,
            "progress": progress,
            "batch_id": batch_id,
            "run_token": "",
            "rq_job_id": "",
            "attempts": F("attempts") - 1,  # the attempt is the result's handling
            "enqueued_at": timezone.now(),
        },
    )


def finish(
    job: AIJob,
    status: str,
    *,
    phase: str = Phase.DONE,
    error_code: str = "",
    error: str = "",
    **columns: Any,
) -> None:
    """The run ends the job: succeeded, failed, cancelled or superseded."""
    if status not in FINISHED_STATUSES:
        raise ValueError(f"{status!r} is not a final status.")
    values: dict[str, Any] = {
        "status": status,
        "phase": phase,
        "error_code": error_code,
        "error": error,
        "finished_at": timezone.now(),
        "run_token": "",
        "partial_output": "",
        **columns,
    }
    if status == Status.SUCCEEDED:
        values["progress"] = 100
    _guarded_update(job, values)


def recover_lost(
    job: AIJob,
    guarded: QuerySet[AIJob],
    *,
    exhausted: bool,
    error_code: str,
    error: str,
    now: datetime | None = None,
    newer: QuerySet[AIJob] | None = None,
) -> str | None:
    """A run was lost (its worker died): superseded when a newer job exists for its
    row and field (``newer``: open or finished, it has the newer work: this one must
    not call again nor write), else failed when no attempts are left, else back to
    pending; its quota reservations are released. ``guarded`` selects the job only
    in the state it was read in; returns the new status, or None when something else
    changed the job meanwhile."""
    now = now or timezone.now()
    values: dict[str, Any] = {"run_token": "", "reservations": [], "updated_at": now}
    if newer is not None and newer.exists():
        values.update(_superseded_by_newer(now))
    elif exhausted:
        values.update(status=Status.FAILED, error_code=error_code, error=error, finished_at=now)
    else:
        values["status"] = Status.PENDING
    with databases.atomic():
        try:
            with databases.atomic():  # a savepoint: a newer open job may win the race
                updated = guarded.update(**values)
        except IntegrityError:  # one open job per row and field: a newer one is open
            values.update(_superseded_by_newer(now))
            updated = guarded.update(**values)
        if not updated:
            return None
        if job.reservations:
            quotas.release(job.reservations)
    for name in ("status", "error_code", "error"):
        setattr(job, name, values.get(name, getattr(job, name)))
    _announce(job, level=logging.WARNING)
    _signal(job)
    return str(values["status"])


def _superseded_by_newer(now: datetime) -> dict[str, Any]:
    return {
        "status": Status.SUPERSEDED,
        "error_code": "",
        "error": str(SUPERSEDED_BY_NEWER),
        "finished_at": now,
    }


SUPERSEDED_BY_NEWER = _(
    "The worker running this job died, and a newer job for its row and field exists: "
    "that one does the work."
)


# -- a person's actions ------------------------------------------------------------------


def restart(job: AIJob, *, tenant: str | None = None) -> bool:
    """A failed or cancelled job starts afresh (pending, its attempts reset; as
    ``tenant`` when given: the one its row belongs to now). False when it is in
    another state now; raises IntegrityError when another open job exists for its
    row and field (one open job per row and field)."""
    if tenant is not None:
        job.tenant = tenant
    restartable = AIJob.objects.filter(pk=job.pk, status__in=RESTARTABLE_STATUSES)
    with transaction.atomic(using=tally.written_db(restartable)):  # out of the tally too
        updated = restartable.filter(pk__in=tally.take_out(restartable)).update(
            tenant=job.tenant,
            status=Status.PENDING,
            phase=Phase.INIT,
            progress=0,
            attempts=0,
            error_code="",
            error="",
            run_token="",
            enqueued_at=None,
            started_at=None,
            finished_at=None,
            updated_at=timezone.now(),
            tallied=False,
        )
    if updated:
        job.status, job.error_code, job.error = Status.PENDING, "", ""
        _announce(job)
    return bool(updated)


def cancel(jobs: QuerySet[AIJob], reason: str) -> list[int]:
    """Cancel those of ``jobs`` that are still open; returns their ids. A queued job's
    task stays on the queue: the worker finds the job no longer open and skips it."""
    ids = list(jobs.filter(status__in=OPEN_STATUSES).values_list("pk", flat=True))
    if not ids:
        return []
    now = timezone.now()
    same_db = AIJob.objects.using(jobs.db)
    same_db.filter(pk__in=ids, status__in=OPEN_STATUSES).update(
        status=Status.CANCELLED, run_token="", error=reason, finished_at=now, updated_at=now
    )
    cancelled = list(same_db.filter(pk__in=ids, status=Status.CANCELLED, finished_at=now))
    for job in cancelled:
        _announce(job)
    return [job.pk for job in cancelled]


# -- a proposal waiting for a person (review=True) ---------------------------------------


def to_review(job: AIJob, **columns: Any) -> None:
    """The run ends holding its answer as a proposal (``output``, among ``columns``):
    in_review until a person accepts or rejects it. ``review_requested`` follows the
    commit."""
    _guarded_update(
        job,
        {
            "status": Status.IN_REVIEW,
            "phase": Phase.SAVE,
            "progress": PROGRESS[Phase.SAVE],
            "run_token": "",
            "partial_output": "",
            **columns,
        },
    )


def accept(
    job: AIJob, *, reviewer: str, message: str = "Accepted", proposal: Any = None, **columns: Any
) -> bool:
    """A person accepted the proposal: in_review -> succeeded, one conditional UPDATE,
    so of two reviewers accepting at once exactly one wins; the caller writes the
    value in the same transaction. ``proposal``: the answer, kept in the step log
    when the person wrote an edited value. False when the job is in review no longer."""
    now = timezone.now()
    values = {
        "status": Status.SUCCEEDED,
        "phase": Phase.DONE,
        "progress": 100,
        "finished_at": now,
        "reviewed_by": reviewer,
        "reviewed_at": now,
        **columns,
    }
    extra = {} if proposal is None else {"proposal": proposal}
    return _reviewed(job, values, message, **extra)


def reject(job: AIJob, *, reviewer: str, reason: str) -> bool:
    """A person rejected the proposal: in_review -> cancelled, the row untouched.
    False when the job is in review no longer."""
    now = timezone.now()
    values = {
        "status": Status.CANCELLED,
        "phase": Phase.DONE,
        "error": reason,
        "finished_at": now,
        "reviewed_by": reviewer,
        "reviewed_at": now,
    }
    return _reviewed(job, values, "Rejected")


def supersede_proposals(jobs: QuerySet[AIJob], reason: str) -> list[int]:
    """Those of ``jobs`` waiting for review end superseded (their row's inputs changed,
    or a newer answer was asked for); returns their ids. One query when none waits."""
    ids = list(jobs.filter(status=Status.IN_REVIEW).values_list("pk", flat=True))
    if not ids:
        return []
    now = timezone.now()
    same_db = AIJob.objects.using(jobs.db)
    waiting = same_db.filter(pk__in=ids, status=Status.IN_REVIEW)
    with transaction.atomic(using=tally.written_db(waiting)):  # out of the tally too
        waiting.filter(pk__in=tally.take_out(waiting)).update(
            status=Status.SUPERSEDED, error=reason, finished_at=now, updated_at=now, tallied=False
        )
    superseded = list(
        same_db.filter(pk__in=ids, status=Status.SUPERSEDED, finished_at=now).defer(
            "prompt", "output", "payload", "steps"
        )
    )
    for job in superseded:
        _announce(job)
    return [job.pk for job in superseded]


def _reviewed(job: AIJob, values: dict[str, Any], message: str, **extra: Any) -> bool:
    reviewer = values["reviewed_by"]
    note = f"{message} by {reviewer}" if reviewer else message
    values["steps"] = with_note(job, Phase.DONE, note, **extra)
    waiting = AIJob.objects.using(job._state.db or "default").filter(
        pk=job.pk, status=Status.IN_REVIEW
    )
    with transaction.atomic(using=tally.written_db(waiting)):  # out of the tally too
        updated = waiting.filter(pk__in=tally.take_out(waiting)).update(
            **values, updated_at=values["reviewed_at"], tallied=False
        )
    if not updated:
        return False
    for name, value in values.items():
        setattr(job, name, value)
    _announce(job)
    _signal(job)
    return True


def record_succeeded(records: Sequence[dict[str, Any]], using: str) -> list[AIJob]:
    """Create jobs that succeeded from the start, one per dict of columns (a
    person's hand edit, recorded so badges, history and later saves see it). No
    provider call: no signal."""
    now = timezone.now()
    done = {"status": Status.SUCCEEDED, "phase": Phase.DONE, "progress": 100, "finished_at": now}
    created = AIJob.objects.using(using).bulk_create([AIJob(**r, **done) for r in records])
    for job in created:
        _announce(job)
    return created


# -- internals ----------------------------------------------------------------------------


def write_later(job: AIJob, **columns: Any) -> None:
    """Set columns of a held job now and write them with its next write or
    transition, which follows anyway (one query fewer per answered call). Plain
    values only: only the run holding the job writes these columns. A phase change
    adds its step, as ``write`` does."""
    _add_step(job, columns)
    for name, value in columns.items():
        setattr(job, name, value)
    setattr(job, UNWRITTEN, {*getattr(job, UNWRITTEN, ()), *columns})


# The attribute naming a job's columns set by write_later() and not yet written.
UNWRITTEN = "_ai_unwritten_columns"


def write_unwritten(job: AIJob) -> None:
    """Write the columns ``write_later`` set, now, in the caller's transaction, while
    this run still holds the job (raises LeaseLost otherwise). No query when none
    wait."""
    if getattr(job, UNWRITTEN, None):
        _guarded_update(job, {})


def _add_step(job: AIJob, values: dict[str, Any]) -> None:
    """A phase or status change in ``values`` adds its step (unless they carry one)."""
    if ("phase" in values or "status" in values) and "steps" not in values:
        values["steps"] = with_step(job, values)


def _guarded_update(job: AIJob, values: dict[str, Any]) -> None:
    _add_step(job, values)
    pending = {name: getattr(job, name) for name in getattr(job, UNWRITTEN, ())}
    values = {**pending, **values}
    # An empty token is not a lease: it would match every finished job.
    if not job.run_token or not AIJob.objects.filter(pk=job.pk, run_token=job.run_token).update(
        **values, updated_at=timezone.now()
    ):
        raise LeaseLost
    setattr(job, UNWRITTEN, set())
    for name, value in values.items():
        if not hasattr(value, "resolve_expression"):
            setattr(job, name, value)
    if "status" in values:
        _announce(job)
        _signal(job)


def _signal(job: AIJob) -> None:
    if job.status == Status.FAILED:
        signals.job_failed.send(sender=AIJob, job=job, error_code=job.error_code, error=job.error)
    elif job.status == Status.SUCCEEDED:
        databases.on_commit(lambda: signals.job_completed.send(sender=AIJob, job=job), robust=True)
    elif job.status == Status.IN_REVIEW:
        databases.on_commit(
            lambda: signals.review_requested.send(sender=AIJob, job=job), robust=True
        )


def _announce(job: AIJob, level: int | None = None) -> None:
    """Log (after the commit) and count one job's new status."""
    fields = {
        "event": "ai_job",
        "job_id": job.pk,
        "tenant": job.tenant,
        "function": job.function,
        "target": job.target_label,
        "status": job.status,
        "phase": job.phase,
        "attempt": job.attempts,
        "error_code": job.error_code,
        "error": job.error,
    }
    if level is None:
        level = logging.WARNING if job.status == Status.FAILED else logging.INFO
    message = "AI job %(job_id)s %(status)s (%(phase)s, attempt %(attempt)s)"
    if job.error_code or job.error:
        message += ": %(error_code)s %(error)s"
    databases.on_commit(lambda: _emit(level, message, fields), robust=True)


def _announce_many(
    job_ids: Sequence[int], status: str, count: int, *, level: int = logging.INFO, **extra: Any
) -> None:
    """Log and count a bulk transition in one record (a burst handed to one drain)."""
    if not count:
        return
    fields = {"event": "ai_jobs", "job_ids": list(job_ids), "status": status, "count": count}
    fields.update(extra)
    detail = ", ".join(f"{key} %({key})s" for key in extra)
    message = "%(count)s AI job(s) %(status)s" + (f" ({detail})" if detail else "")
    databases.on_commit(lambda: _emit(level, message, fields), robust=True)


def _emit(level: int, message: str, fields: dict[str, Any]) -> None:
    logger.log(level, message, fields, extra=fields)
    status, error_code = fields["status"], fields.get("error_code", "")
    metrics.record_job_status(status, error_code, fields.get("count", 1))
