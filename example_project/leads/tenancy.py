"""``AI_FIELDS["TENANT_RESOLVER"]``: each lead's company is its tenant."""

from __future__ import annotations

from django.db import models


def lead_company(instance: models.Model) -> str | None:
    """Quotas, budgets and usage are counted per company; other models have no tenant."""
    return getattr(instance, "company", None) or None
