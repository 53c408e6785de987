"""The tenants' own data (in TENANT_APPS: one table per schema), as seed 001's CRM."""

from django.db import models

from django_ai_fields.fields import AIGeneratedField


class Lead(models.Model):
    name = models.CharField(max_length=100)
    company = models.CharField(max_length=100, blank=True)
    summary = AIGeneratedField(
        prompt="Summarize the lead {name} at {company}.", blank=True, null=True
    )

    def __str__(self) -> str:
        return self.name
