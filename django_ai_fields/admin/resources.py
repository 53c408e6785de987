"""django-import-export resources: usage rows out, quotas in and out.

Exported text may come from untrusted hands (a provider's claimed model name, a
tenant name taken from row data), and a spreadsheet runs a cell that starts with
``=``, ``+``, ``-`` or ``@`` as a formula (``=HYPERLINK(...)``). Every export
writes such a cell as text, with a leading ``'`` (OWASP's advice on CSV
injection). django-import-export's own ``IMPORT_EXPORT_ESCAPE_FORMULAE_ON_EXPORT``
is a project-wide setting that only removes one leading ``=``, so ``+``, ``@``
and ``==`` formulas pass it.
"""

from __future__ import annotations

from typing import Any

from import_export import resources

from ..models import AIUsage, Quota

# What one provider call cost and how it went: shown by the admin, exported here.
USAGE_CALL_COLUMNS = (
    "provider",
    "model",
    "reported_model",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "cost_usd",
    "gateway_cost_usd",
    "duration_ms",
    "success",
    "cache_hit",
    "error_code",
)
# Hosted tool uses and their fees (a part of cost_usd): exported, not in the list.
TOOL_COLUMNS = ("tool_calls", "tool_cost_usd")
USAGE_COLUMNS = ("id", "created_at", "tenant", "job", *USAGE_CALL_COLUMNS, *TOOL_COLUMNS)
# How a spreadsheet recognises a formula (a tab or carriage return first hides one).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
TEXT_MARK = "'"


def as_text(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula, marked as text."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return TEXT_MARK + value
    return value


def unmarked(value: Any) -> Any:
    """``as_text`` undone, for a cell imported from one of our exports."""
    if isinstance(value, str) and value.startswith(TEXT_MARK):
        rest = value[len(TEXT_MARK) :]
        return rest if rest.startswith(FORMULA_STARTS) else value
    return value


class SpreadsheetSafeResource(resources.ModelResource):
    """A resource whose exported text never starts a formula."""

    def export_field(self, field: Any, instance: Any, **kwargs: Any) -> Any:
        return as_text(super().export_field(field, instance, **kwargs))


class AIUsageResource(SpreadsheetSafeResource):
    """Export only: usage rows are written by the workers, never imported."""

    class Meta:
        model = AIUsage
        fields = USAGE_COLUMNS
        export_order = USAGE_COLUMNS


class QuotaResource(SpreadsheetSafeResource):
    """A quota is identified by (tenant, kind, period): importing updates it in place."""

    class Meta:
        model = Quota
        fields = ("tenant", "kind", "period", "limit", "is_unlimited")
        export_order = fields
        import_id_fields = ("tenant", "kind", "period")
        skip_unchanged = True
        report_skipped = True
        clean_model_instances = True  # full_clean(): kind and period must be valid choices

    def before_import_row(self, row: Any, **kwargs: Any) -> None:
        for name, value in list(row.items()):  # an exported file imports back as it was
            row[name] = unmarked(value)
