from django.contrib import admin

from django_ai_fields.admin.mixins import AIFieldsAdminMixin

from .models import Lead


@admin.register(Lead)
class LeadAdmin(AIFieldsAdminMixin, admin.ModelAdmin):
    """The mixin adds a status badge column per AI field and "Regenerate" actions."""

    list_display = ["name", "company", "heat", "headline"]
    list_filter = ["heat"]
    search_fields = ["name", "company", "email"]
    # The worker writes these (follow_up once a person accepts it on "Review AI
    # proposals"). Editable, a hand edit would be kept until someone regenerates: AI
    # fields keep_manual_edits=True by default.
    readonly_fields = ["summary", "headline", "heat", "profile", "follow_up"]
