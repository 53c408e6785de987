"""``{% load ai_fields %}``: status badges for AI fields.

``{% ai_status obj "field" %}`` renders ``django_ai_fields/status.html``.
``{% ai_status_prefetch rows %}`` (or ``with_ai_status(rows)`` in the view) loads
every row's statuses in one query first, so a list costs one query, not N.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.db import models
from django.template.loader import render_to_string
from django.templatetags.static import static
from django.utils.html import format_html
from django.utils.safestring import SafeString

from ..status import badge_context, job_for, with_ai_status

register = template.Library()

TEMPLATE = "django_ai_fields/status.html"


def render_badge(obj: models.Model, field_name: str) -> SafeString:
    context = badge_context(obj, field_name, job_for(obj, field_name))
    return render_to_string(TEMPLATE, context)


@register.simple_tag
def ai_status(obj: models.Model | None, field_name: str) -> SafeString | str:
    """The status badge of ``obj``'s AI field ``field_name``."""
    if obj is None or obj.pk is None:
        return ""
    return render_badge(obj, field_name)


@register.simple_tag
def ai_status_prefetch(rows: Any, *fields: str) -> str:
    """Load the statuses of all ``rows`` (optionally only ``fields``) in one query."""
    with_ai_status(rows, list(fields) or None)
    return ""


@register.simple_tag
def ai_status_js() -> SafeString:
    """The script that refreshes unfinished badges (include once per page)."""
    return format_html('<script src="{}" defer></script>', static("django_ai_fields/status.js"))
