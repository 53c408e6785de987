"""``ai_cleanup --older-than 30d``: delete finished jobs and usage rows older than that."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import models
from django.db.models.functions import Coalesce
from django.utils import timezone

from ...models import FINISHED_STATUSES, UNFINISHED_STATUSES, AIJob, AIUsage

AGE = re.compile(r"^(?P<n>\d+)(?P<unit>[dh])$")
CHUNK = 2000


def parse_age(text: str) -> timedelta:
    match = AGE.match(text.strip().lower())
    if not match:
        raise CommandError(f"--older-than {text!r}: use a number and d or h, e.g. 30d or 12h.")
    n = int(match["n"])
    return timedelta(days=n) if match["unit"] == "d" else timedelta(hours=n)


def delete_in_chunks(queryset: models.QuerySet[Any]) -> int:
    """Delete by primary key in chunks: short transactions on big tables."""
    model, deleted = queryset.model, 0
    while ids := list(queryset.values_list("pk", flat=True)[:CHUNK]):
        model._default_manager.filter(pk__in=ids).delete()
        deleted += len(ids)
    return deleted


class Command(BaseCommand):
    help = (
        "Delete finished AI jobs and usage rows older than a given age. Unfinished jobs "
        "(pending, queued, running) and their usage rows are always kept; quota usage "
        "counters are not touched."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--older-than", required=True, help="Age such as 30d (days) or 12h (hours)."
        )
        parser.add_argument("--dry-run", action="store_true", help="Count only; delete nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        cutoff = timezone.now() - parse_age(options["older_than"])
        jobs = (
            AIJob.objects.annotate(ended=Coalesce("finished_at", "updated_at"))
            .filter(status__in=FINISHED_STATUSES, ended__lt=cutoff)
            .order_by("pk")
        )
        usage = (
            AIUsage.objects.filter(created_at__lt=cutoff)
            .exclude(job__status__in=UNFINISHED_STATUSES)
            .order_by("pk")
        )
        when = cutoff.isoformat(timespec="seconds")
        if options["dry_run"]:
            self.stdout.write(
                f"Dry run: would delete {jobs.count()} finished job(s) and "
                f"{usage.count()} usage row(s) older than {when}."
            )
            return
        usage_deleted = delete_in_chunks(usage)
        jobs_deleted = delete_in_chunks(jobs)
        self.stdout.write(
            f"Deleted {jobs_deleted} finished job(s) and {usage_deleted} usage row(s) "
            f"older than {when}."
        )
