from django.contrib import admin

from django_ai_fields.admin.mixins import AIFieldsAdminMixin

from .models import Lead


@admin.register(Lead)
class LeadAdmin(AIFieldsAdminMixin, admin.ModelAdmin):
    """The mixin adds a status badge column per AI field and "Regenerate" actions."""

    list_display = ["name", "company", "heat", "summary"]
    list_filter = ["heat"]
    search_fields = ["name", "company", "email"]
    # The worker writes these; a hand edit would be overwritten on the next change.
    readonly_fields = ["summary", "heat", "profile"]
