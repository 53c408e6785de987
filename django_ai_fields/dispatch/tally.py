"""Finished jobs counted per day of creation, tenant, status and error code
(AIJobDaily), so ``analytics/performance/`` reads a small table, not the job table.

A finished job (not pending, queued or running) is *tallied* (``AIJob.tallied``)
under its status and error code by ``catch_up`` (the sweep, ``ai_cleanup``): each
batch locks its jobs, marks them and adds them per group in one transaction, so
two sweeps at once or a crash halfway never count a job twice or lose one. A
transition that takes a job out of a finished status (a restart, a review, a
supersede: transitions.py) locks the jobs it changes, takes the tallied ones out of
their rows (``take_out``) and clears ``tallied`` in the same transaction. Readers
add the finished jobs not tallied yet from the job table in the same statement
(observability/rollup_reads.py): exact at every moment. Why: docs/performance.md.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.db import models, router, transaction

from .. import databases
from ..codes import UNFINISHED_STATUSES
from ..models import AIJob, AIJobDaily
from ..money.usage_rollup import add, day_of, in_batches

KEY = ("tenant", "status", "error_code")
CATCH_UP_BATCH = 5000


def key_of(job: AIJob) -> tuple[tuple[str, Any], ...]:
    return (("day", day_of(job.created_at)), *((name, getattr(job, name)) for name in KEY))


def catch_up(
    *, using: str | None = None, batch: int = CATCH_UP_BATCH, batches: int | None = None
) -> int:
    """Tally the finished jobs not tallied yet (at most ``batches`` batches); returns
    how many."""
    db = using or databases.for_decisions(AIJob)
    return in_batches(lambda: _catch_up_batch(db, batch), batches)


def _catch_up_batch(db: str, batch: int) -> int:
    with transaction.atomic(using=db):
        untallied = (
            AIJob.objects.using(db)
            .filter(tallied=False)
            .exclude(status__in=UNFINISHED_STATUSES)
            .order_by("pk")
        )
        rows = list(untallied.select_for_update().only("created_at", *KEY)[:batch])
        if not rows:
            return 0
        marked = untallied.filter(pk__in=[row.pk for row in rows]).update(tallied=True)
        if marked != len(rows):  # another writer got there first: count nothing
            raise RuntimeError("Job tally catch-up raced with another writer; run it again.")
        _added(rows, 1, db)
    return len(rows)


def take_out(jobs: models.QuerySet[AIJob]) -> list[int]:
    """Lock ``jobs`` and take the tallied ones out of their AIJobDaily rows; returns
    the ids locked. Call inside a transaction, then change those rows only (their
    status can no longer change under you), setting ``tallied=False``."""
    rows = list(jobs.select_for_update().order_by("pk").only("created_at", "tallied", *KEY))
    _added([row for row in rows if row.tallied], -1, written_db(jobs))
    return [row.pk for row in rows]


def written_db(jobs: models.QuerySet[AIJob]) -> str:
    """The database an UPDATE of ``jobs`` writes to (and its transaction's)."""
    alias: str | None = getattr(jobs, "_db", None)  # set by using() (or a pin)
    return alias or router.db_for_write(jobs.model)


def _added(rows: list[AIJob], sign: int, db: str) -> None:
    # Rows locked in one order (jobs by pk, tally rows by key): no deadlock between two.
    for key, count in sorted(Counter(key_of(row) for row in rows).items()):
        add(dict(key), {"jobs": sign * count}, using=db, model=AIJobDaily)
