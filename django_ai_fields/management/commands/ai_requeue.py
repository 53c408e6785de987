"""``ai_requeue``: run the sweep now (enqueue pending and lost jobs, collect
ended provider batches)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from ...jobs.batches import poll
from ...jobs.sweep import schedule_sweep, sweep


class Command(BaseCommand):
    help = (
        "Enqueue AI jobs left pending (e.g. Redis was down at save) and requeue "
        "running jobs older than JOB_TIMEOUT (their worker died); collect the results "
        "of provider batches that ended."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        report = sweep(all_pending=True)
        schedule_sweep()
        self.stdout.write(str(report))
        self.stdout.write(str(poll()))  # provider batches (ai_regenerate --batch)
        if report.unreachable:
            self.stderr.write("Redis is unreachable: the jobs stay pending; run this again later.")
            raise SystemExit(1)
