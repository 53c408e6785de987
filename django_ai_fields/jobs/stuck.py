"""No silent waits: a job ``pending`` or ``queued`` longer than
``AI_FIELDS["STUCK_AFTER"]`` is *stuck*.

``ai_status`` names each with its reason (and exits non-zero), the admin's *stuck*
filter shows them, and the sweep (and ``ai_status``) logs each one once, with the
reason the code can tell, counted in the metrics (``django_ai_fields_jobs_stuck``):

- ``queue_unreachable``: the task queue cannot be reached;
- ``no_worker``: no worker listens on the AI queue (RQ, Celery);
- ``schema_missing``: the schema the job was requested in does not exist;
- ``row_not_visible``: the job's row cannot be read from the job's database (and
  schema): a router or a ``using()`` put it where the worker does not look;
- ``context_unusable``: the job's recorded context cannot be entered here;
- ``waiting``: none of these: the workers are busy (the queue depth says how busy).

Stuck jobs are found on the (status, updated_at) index: a range, never the table. A
job is logged again only if it moved (its ``updated_at``) since it was last logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from ..conf import get_setting
from ..dispatch import backend, context
from ..models import FIELD_FUNCTION, AIJob, Phase, Status
from ..observability import metrics
from ..tenants import schemas

logger = logging.getLogger("django_ai_fields")

# The most stuck jobs one sweep logs (the next sweep logs the rest).
REPORTED_PER_SWEEP = 100


@dataclass(frozen=True)
class Reason:
    code: str
    text: str

    def __str__(self) -> str:
        return self.text


def stuck_filter(now: datetime | None = None) -> Q:
    """Pending or queued past STUCK_AFTER (a job in a provider batch waits for the
    provider, not for a worker)."""
    deadline = (now or timezone.now()) - timedelta(seconds=float(get_setting("STUCK_AFTER")))
    return Q(status__in=[Status.PENDING, Status.QUEUED], updated_at__lt=deadline) & ~Q(
        phase=Phase.BATCH
    )


def queue_state() -> dict[str, Any]:
    """The task backend's view of the queue, read once for many jobs."""
    try:
        return {"ok": True, **backend.queue_health()}
    except Exception as exc:  # the broker unreachable or misconfigured
        return {"ok": False, "name": get_setting("QUEUE"), "error": f"{type(exc).__name__}: {exc}"}


def reason(job: AIJob, queue: dict[str, Any], visit: context.Context | None = None) -> Reason:
    """Why ``job`` waits (found on ``visit``: the database and schema looked in)."""
    if not queue["ok"]:
        return Reason("queue_unreachable", f"queue unreachable ({queue['error']})")
    if queue.get("workers") == []:
        return Reason("no_worker", f"no worker listens on queue {queue['name']!r}")
    visit = visit or context.current()
    alias = visit["db"]
    if schema_missing(job, visit):
        return Reason("schema_missing", f"the job's schema {job.schema!r} does not exist")
    if job.function == FIELD_FUNCTION and job.content_type_id is not None:
        try:
            with context.restore(context.of_job(visit, job.schema, job.context)):
                visible = job.get_target() is not None
        except Exception as exc:
            return Reason("context_unusable", f"the job's context cannot be entered: {exc}")
        if not visible:
            return Reason(
                "row_not_visible", f"the row is not visible from the worker's database {alias!r}"
            )
    depth = queue.get("depth", queue.get("waiting"))
    behind = f" behind {depth} task(s)" if depth else ""
    return Reason("waiting", f"waiting{behind} on queue {queue['name']!r}: workers busy")


def schema_missing(job: AIJob, visit: context.Context) -> bool:
    """The job records a schema other than the visit's (one job table shared by the
    schemas) and the database has no such schema (the tenant was dropped)."""
    alias = visit["db"]
    if not job.schema or job.schema == visit.get("schema") or not schemas.active(alias):
        return False
    return not schemas.exists(alias, job.schema)


def unreported(jobs: models.QuerySet[AIJob], now: datetime) -> models.QuerySet[AIJob]:
    """The stuck jobs not logged since they last moved."""
    fresh = Q(stuck_reported_at__isnull=True) | Q(stuck_reported_at__lt=F("updated_at"))
    return jobs.filter(stuck_filter(now)).filter(fresh)


def report_here(visit: context.Context, queue: dict[str, Any], now: datetime) -> int:
    """Log the stuck jobs of one visit (database and schema) not logged yet, each once
    with its reason, and count them in the metrics. Returns how many."""
    jobs = unreported(AIJob.objects.select_related("content_type"), now)
    found = list(jobs.order_by("updated_at")[:REPORTED_PER_SWEEP])
    for job in found:
        why = reason(job, queue, visit)
        logger.warning(
            "AI job %s (%s) is stuck: %s for %.0f s: %s",
            job.pk,
            job.target_label or job.function,
            job.status,
            (now - job.updated_at).total_seconds(),
            why,
            extra={"ai_job_id": job.pk, "stuck_reason": why.code},
        )
        metrics.record_stuck(why.code)
    if found:  # update() leaves updated_at alone: a later move reports the job again
        AIJob.objects.filter(pk__in=[job.pk for job in found]).update(stuck_reported_at=now)
    return len(found)


def report(now: datetime | None = None) -> int:
    """``report_here`` on every database and schema holding jobs."""
    now = now or timezone.now()
    queue = queue_state()
    total = 0
    for visit in context.visits():
        with context.restore(visit):
            total += report_here(visit, queue, now)
    return total
