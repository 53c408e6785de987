from django.db import models
from django.utils.translation import gettext_lazy as _

from django_ai_fields.fields import AIGeneratedField, AIGeneratedJSONField

HEAT_CHOICES = [("hot", _("Hot")), ("warm", _("Warm")), ("cold", _("Cold"))]

PROFILE_SCHEMA = {
    "type": "object",
    "properties": {
        "industry": {"type": "string"},
        "employees": {"type": "integer", "minimum": 0},
        "interests": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["industry", "employees"],
    "additionalProperties": False,
}


class Lead(models.Model):
    name = models.CharField(_("name"), max_length=100)
    company = models.CharField(_("company"), max_length=100)
    email = models.EmailField(_("email"), blank=True)
    notes = models.TextField(_("notes"), blank=True)
    logo = models.ImageField(_("company logo"), upload_to="logos/", blank=True)

    # {*} lists every field but the excluded email and logo (and the AI fields
    # themselves), so a change to name, company or notes regenerates the summary.
    summary = AIGeneratedField(
        _("summary"),
        prompt="Summarize this sales lead in two sentences for a sales rep. Record: {*}",
        excluded_fields=["email", "logo"],
        blank=True,
        null=True,
    )
    # A chained field: {summary} is itself an AI field, so the headline is written
    # after the summary, and again whenever the summary's value changes.
    headline = AIGeneratedField(
        _("headline"),
        prompt="Write a one-line headline for this lead summary: {summary}",
        blank=True,
        null=True,
    )
    heat = AIGeneratedField(
        _("heat"),
        prompt="How ready to buy is this lead? Notes: {notes}",
        max_length=8,
        choices=HEAT_CHOICES,
        blank=True,
        null=True,
    )
    profile = AIGeneratedJSONField(
        _("company profile"),
        prompt="Extract facts about the company {company} from these notes: {notes}",
        schema=PROFILE_SCHEMA,
        blank=True,
        null=True,
    )
    # The logo image goes to the provider with the prompt (docs/fields.md); only a
    # new logo regenerates the alt text, a renamed company does not.
    logo_alt_text = AIGeneratedField(
        _("logo alt text"),
        prompt="Write a one-sentence alt text for the logo of the company {company}.",
        inputs=["logo"],
        trigger_fields=["logo"],
        max_length=200,
        blank=True,
        null=True,
    )

    # Reviewed before it is written (docs/values.md): the answer waits as a proposal on
    # the admin's "Review AI proposals" page until a person accepts (or edits) it.
    follow_up = AIGeneratedField(
        _("follow-up e-mail"),
        prompt="Draft a short, friendly follow-up e-mail to {name} at {company}. Notes: {notes}",
        review=True,
        blank=True,
        null=True,
    )

    class Meta:
        ordering = ["name"]
        verbose_name = _("lead")
        verbose_name_plural = _("leads")

    def __str__(self) -> str:
        return f"{self.name} ({self.company})"
