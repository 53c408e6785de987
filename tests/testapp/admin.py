from django.contrib import admin

from django_ai_fields.admin import AIFieldsAdminMixin

from .models import Lead


@admin.register(Lead)
class LeadAdmin(AIFieldsAdminMixin, admin.ModelAdmin):
    list_display = ("name", "company")
