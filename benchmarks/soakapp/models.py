from __future__ import annotations

from django.db import models

from django_ai_fields.fields import AIGeneratedField

# The prompt the soak's provider parses back into (name, notes).
PROMPT = "Summarize lead {name}. Notes: {notes}"


class SoakLead(models.Model):
    name = models.CharField(max_length=100)
    notes = models.TextField(blank=True)
    summary = AIGeneratedField(prompt=PROMPT, blank=True, null=True)

    def __str__(self) -> str:
        return self.name
