"""``manage.py demo``: three leads, their AI fields written by an RQ worker.

Migrates, replaces the previous demo leads, runs the queued jobs with an
``rq.SimpleWorker`` in burst mode (in this process, so no worker needs to be
running), and prints what the fields now hold and how each job ended.
"""

from __future__ import annotations

import io
import json
import time
from typing import Any

import redis
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils.text import slugify
from PIL import Image, ImageDraw

from django_ai_fields.api import latest_job
from django_ai_fields.conf import get_setting
from django_ai_fields.fields import ai_fields_of
from django_ai_fields.models import OPEN_STATUSES, AIJob, Status
from django_ai_fields.queues import get_queue
from django_ai_fields.rq_worker import SimpleWorker
from leads.management.commands.demo_user import DEMO_PASSWORD, DEMO_USERNAME, ensure_demo_user
from leads.management.table import format_table
from leads.models import Lead

DEMO_LEADS = [
    {
        "name": "Ada Lovelace",
        "company": "Analytical Engines Ltd",
        "email": "ada@analytical.example",
        "notes": "Insurance industry analytics team of 300 staff. Wants 40 seats before the "
        "end of the quarter; budget approved, asked for a contract draft. Interested in "
        "analytics and automation.",
    },
    {
        "name": "Grace Hopper",
        "company": "Compiler Works",
        "email": "grace@compilerworks.example",
        "notes": "Evaluating us against two competitors. Team of 120 engineers in the "
        "automotive industry; follow up after their planning meeting next month.",
    },
    {
        "name": "Alan Turing",
        "company": "Bletchley Ciphers",
        "email": "alan@bletchley.example",
        "notes": "Small consultancy in the security sector, 12 people. Downloaded the "
        "whitepaper once. No reply to the last two emails.",
    },
]

# One logo colour per demo lead (a generated PNG: the logo alt text's input).
LOGO_COLORS = ["#1f6feb", "#d29922", "#8250df"]

# Retries are enqueued with a delay; give them this long before reporting.
WAIT_SECONDS = 120


def demo_logo(company: str, color: str) -> ContentFile[bytes]:
    """A small PNG logo: a coloured square with a white bar (Pillow)."""
    image = Image.new("RGB", (64, 64), color)
    ImageDraw.Draw(image).rectangle((12, 26, 52, 38), fill="white")
    out = io.BytesIO()
    image.save(out, format="PNG")
    return ContentFile(out.getvalue(), name=f"{slugify(company)}.png")


class Command(BaseCommand):
    help = "Create three demo leads, generate their AI fields with an RQ worker, print them."

    def handle(self, *args: Any, **options: Any) -> None:
        self.print_setup()
        call_command("migrate", interactive=False, verbosity=0)
        if settings.DEBUG:
            ensure_demo_user()
        leads = self.create_leads()
        self.stdout.write(f"Created {len(leads)} leads; {self.open_jobs(leads)} AI jobs open.")
        started = time.monotonic()
        try:
            self.run_worker(leads)
        except redis.ConnectionError as exc:
            raise CommandError(f"Redis unreachable ({settings.REDIS_DESCRIPTION}): {exc}") from exc
        self.stdout.write(f"The worker finished in {time.monotonic() - started:.1f}s.\n")
        failed = self.report(leads)
        if failed:
            raise CommandError(f"{failed} AI job(s) did not succeed.")
        self.print_review(leads)
        self.print_next_steps()

    def print_setup(self) -> None:
        provider = get_setting("DEFAULT_PROVIDER")
        hint = "" if provider != "offline" else " (set OPENAI_API_KEY to use OpenAI)"
        db = settings.DATABASES["default"]
        self.stdout.write(self.style.MIGRATE_HEADING("django-ai-fields demo"))
        self.stdout.write(f"  database: {db['ENGINE'].rsplit('.', 1)[-1]} {db['NAME']}")
        self.stdout.write(f"  redis:    {settings.REDIS_DESCRIPTION}")
        self.stdout.write(f"  provider: {provider}, model {get_setting('DEFAULT_MODEL')}{hint}")

    def print_review(self, leads: list[Lead]) -> None:
        """The follow-up e-mails (review=True) wait for a person: where to review them."""
        waiting = AIJob.objects.filter(
            content_type=ContentType.objects.get_for_model(Lead),
            object_id__in=[str(lead.pk) for lead in leads],
            status=Status.IN_REVIEW,
        ).count()
        if waiting:
            self.stdout.write(
                f"\n{waiting} follow-up e-mail(s) wait for review (review=True): accept, edit "
                "or reject them on the admin's Review AI proposals page, "
                "http://127.0.0.1:8000/admin/django_ai_fields/aiproposal/."
            )

    def print_next_steps(self) -> None:
        login = (
            f"log in as {DEMO_USERNAME} / {DEMO_PASSWORD}"
            if settings.DEBUG
            else "log in (manage.py createsuperuser)"
        )
        self.stdout.write(
            "\nSee the leads page: run `manage.py rqworker default --with-scheduler` and "
            f"`manage.py runserver`, open http://127.0.0.1:8000/ and {login}."
        )

    def create_leads(self) -> list[Lead]:
        """Replace the previous run's demo leads (and their jobs) with fresh ones."""
        emails = [lead["email"] for lead in DEMO_LEADS]
        old_ids = [
            str(pk) for pk in Lead.objects.filter(email__in=emails).values_list("pk", flat=True)
        ]
        AIJob.objects.filter(
            content_type=ContentType.objects.get_for_model(Lead), object_id__in=old_ids
        ).delete()
        Lead.objects.filter(email__in=emails).delete()
        # One transaction: the jobs are enqueued when it commits.
        with transaction.atomic():
            return [
                Lead.objects.create(**values, logo=demo_logo(values["company"], color))
                for values, color in zip(DEMO_LEADS, LOGO_COLORS, strict=True)
            ]

    def open_jobs(self, leads: list[Lead]) -> int:
        return AIJob.objects.filter(
            content_type=ContentType.objects.get_for_model(Lead),
            object_id__in=[str(lead.pk) for lead in leads],
            status__in=OPEN_STATUSES,
        ).count()

    def run_worker(self, leads: list[Lead]) -> None:
        """Burst-run the queue until the demo's jobs are done (or WAIT_SECONDS pass)."""
        queue = get_queue()
        # The app's SimpleWorker: it stops at once (rq_worker.py), and as a burst worker
        # its drains do not linger for more saves (DRAIN_LINGER).
        worker = SimpleWorker([queue], connection=queue.connection)
        # The scheduler (delayed retries) reopens the connection: not possible on fakeredis.
        with_scheduler = not type(queue.connection).__module__.startswith("fakeredis")
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            worker.work(burst=True, logging_level="WARNING", with_scheduler=with_scheduler)
            if not self.open_jobs(leads) or time.monotonic() > deadline:
                return
            time.sleep(0.5)

    def report(self, leads: list[Lead]) -> int:
        """Print the leads' AI fields and jobs; return how many jobs did not succeed."""
        rows, jobs = [], []
        for lead in leads:
            lead.refresh_from_db()
            lead_jobs = [(f.name, latest_job(lead, f.name)) for f in ai_fields_of(Lead)]
            jobs.extend(job for _name, job in lead_jobs if job is not None)
            rows.append(
                [
                    f"{lead.name}\n{lead.company}",
                    lead.heat or "-",
                    f"{lead.headline or '-'}\n\n{lead.summary or '-'}",
                    json.dumps(lead.profile) if lead.profile is not None else "-",
                    lead.logo_alt_text or "-",
                    "\n".join(
                        f"{name}: {job.status if job else 'no job'}" for name, job in lead_jobs
                    ),
                ]
            )
        headers = [
            "Lead / company (tenant)",
            "Heat",
            "Headline / summary",
            "Profile",
            "Logo alt text",
            "Jobs",
        ]
        self.stdout.write(format_table(headers, rows, widths=[22, 5, 30, 22, 20, 24]))
        self.stdout.write(
            f"Tokens: {sum(j.input_tokens for j in jobs)} in, "
            f"{sum(j.output_tokens for j in jobs)} out; "
            f"cost ${sum(j.cost_usd for j in jobs):.6f}"
        )
        return self.report_failures(leads, jobs)

    def report_failures(self, leads: list[Lead], jobs: list[AIJob]) -> int:
        expected = len(leads) * len(ai_fields_of(Lead))
        # A proposal waiting for review (follow_up, review=True) is where it should be.
        failures = [j for j in jobs if j.status not in (Status.SUCCEEDED, Status.IN_REVIEW)]
        for job in failures:
            self.stderr.write(
                f"  lead #{job.object_id} {job.field_name}: {job.status} "
                f"[{job.error_code or '-'}] {job.error}"
            )
        return len(failures) + expected - len(jobs)
