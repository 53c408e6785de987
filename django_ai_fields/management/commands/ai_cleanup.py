"""``ai_cleanup --older-than 30d``: delete finished jobs and usage rows older than that.

The daily roll-up (AIUsageDaily) is kept: totals, charts and ``ai_usage`` still
count the deleted calls. Deletes go in batches of ``--batch-size`` primary keys,
each its own short transaction, walking the keys upwards so no batch rescans
rows an earlier one deleted."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import models
from django.db.models.functions import Coalesce
from django.utils import timezone

from ...dispatch import tally
from ...models import FINISHED_STATUSES, UNFINISHED_STATUSES, AIJob, AIUsage
from ...money import usage_rollup
from ...values import retention

AGE = re.compile(r"^(?P<n>\d+)(?P<unit>[dh])$")
BATCH_SIZE = 5000


def parse_age(text: str) -> timedelta:
    match = AGE.match(text.strip().lower())
    if not match:
        raise CommandError(f"--older-than {text!r}: use a number and d or h, e.g. 30d or 12h.")
    n = int(match["n"])
    return timedelta(days=n) if match["unit"] == "d" else timedelta(hours=n)


def delete_in_batches(queryset: models.QuerySet[Any], size: int) -> int:
    """Delete the rows of ``queryset`` by primary key, ``size`` at a time, in key order."""
    model, deleted, last = queryset.model, 0, None
    while True:
        batch = queryset if last is None else queryset.filter(pk__gt=last)
        ids = list(batch.order_by("pk").values_list("pk", flat=True)[:size])
        if not ids:
            return deleted
        model._default_manager.filter(pk__in=ids).delete()
        deleted, last = deleted + len(ids), ids[-1]


def old_jobs(cutoff: Any) -> models.QuerySet[AIJob]:
    """Finished jobs that ended before ``cutoff``; never a pending, queued or running one,
    nor one of the rows' value history (values/retention.py, HISTORY_KEEP)."""
    jobs = AIJob.objects.annotate(ended=Coalesce("finished_at", "updated_at")).filter(
        status__in=FINISHED_STATUSES, ended__lt=cutoff
    )
    return retention.without_kept_history(jobs)


def old_usage(cutoff: Any) -> models.QuerySet[AIUsage]:
    """Usage rows logged before ``cutoff`` and counted in the roll-up, except those of
    jobs still unfinished."""
    return AIUsage.objects.filter(created_at__lt=cutoff, rolled_up=True).exclude(
        job__status__in=UNFINISHED_STATUSES
    )


class Command(BaseCommand):
    help = (
        "Delete finished AI jobs and usage rows older than a given age, in batches. "
        "Unfinished jobs (pending, queued, running) and their usage rows are always kept; "
        "the daily usage roll-up and quota usage counters are not touched."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--older-than", required=True, help="Age such as 30d (days) or 12h (hours)."
        )
        parser.add_argument("--dry-run", action="store_true", help="Count only; delete nothing.")
        parser.add_argument(
            "--batch-size",
            type=int,
            default=BATCH_SIZE,
            help=f"Rows per DELETE, each in its own transaction (default {BATCH_SIZE}).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        cutoff = timezone.now() - parse_age(options["older_than"])
        size = options["batch_size"]
        if size < 1:
            raise CommandError("--batch-size must be at least 1.")
        when = cutoff.isoformat(timespec="seconds")
        if options["dry_run"]:
            usage = AIUsage.objects.filter(created_at__lt=cutoff).exclude(
                job__status__in=UNFINISHED_STATUSES
            )
            self.stdout.write(
                f"Dry run: would delete {old_jobs(cutoff).count()} finished job(s) and "
                f"{usage.count()} usage row(s) older than {when}."
            )
            return
        # Rows written past the app (scripts, older workers) are counted before they go.
        usage_rollup.catch_up(batch=size)
        tally.catch_up(batch=size)  # and finished jobs, into the daily job tally
        usage_deleted = delete_in_batches(old_usage(cutoff), size)
        jobs_deleted = delete_in_batches(old_jobs(cutoff), size)
        self.stdout.write(
            f"Deleted {jobs_deleted} finished job(s) and {usage_deleted} usage row(s) "
            f"older than {when}; the daily usage totals keep counting them."
        )
