"""An AI function beyond fields: turn a pasted e-mail into a new lead.

Run it with ``python manage.py lead_from_email "…text…"`` or from code with
``django_ai_fields.api.run_ai_task("lead_from_email", {"text": ...}, tenant=...)``.
It goes through the same engine as the AI fields: phases, quotas, usage rows,
retries and signals.
"""

from __future__ import annotations

from typing import Any

from django_ai_fields.declare.prompts import fence
from django_ai_fields.functions import AIFunction, register

from .models import Lead

LEAD_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "company": {"type": "string", "minLength": 1},
        "notes": {"type": "string"},
    },
    "required": ["name", "company", "notes"],
    "additionalProperties": False,
}


@register
class LeadFromEmail(AIFunction):
    name = "lead_from_email"
    json_schema = LEAD_SCHEMA
    system_message = (
        "You read an e-mail a prospect sent and extract the sender's name, their "
        "company, and one sentence of notes for a sales rep."
    )
    max_tokens = 300

    def prepare(self, payload: Any, tenant: str) -> str:
        text = str((payload or {}).get("text", "")).strip()
        if not text:
            raise ValueError("The e-mail text is empty.")
        return text

    def build_prompt(self, text: str) -> str:
        return f"The e-mail: {fence(text, 'email')}"

    def save_output(self, parsed: dict[str, str], text: str) -> None:
        # Saving the lead starts its own AI field jobs (summary, heat, profile).
        Lead.objects.create(name=parsed["name"], company=parsed["company"], notes=parsed["notes"])
