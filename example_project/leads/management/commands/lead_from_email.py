from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_ai_fields.api import run_ai_task


class Command(BaseCommand):
    help = "Create a lead from an e-mail's text with the lead_from_email AI function."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("text", help="The e-mail's text.")
        parser.add_argument("--tenant", default="", help="Tenant the call counts against.")

    def handle(self, *args: Any, **options: Any) -> None:
        job = run_ai_task(
            "lead_from_email", {"text": options["text"]}, tenant=options["tenant"], sync=True
        )
        if job.status != "succeeded":
            raise CommandError(f"AI job #{job.pk} {job.status}: {job.error_code} {job.error}")
        self.stdout.write(f"Created lead: {job.output['name']} ({job.output['company']})")
