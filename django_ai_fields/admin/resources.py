"""django-import-export resources: usage rows out, quotas in and out."""

from __future__ import annotations

from import_export import resources

from ..models import AIUsage, Quota

# What one provider call cost and how it went: shown by the admin, exported here.
USAGE_CALL_COLUMNS = (
    "provider",
    "model",
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


class AIUsageResource(resources.ModelResource):
    """Export only: usage rows are written by the workers, never imported."""

    class Meta:
        model = AIUsage
        fields = USAGE_COLUMNS
        export_order = USAGE_COLUMNS


class QuotaResource(resources.ModelResource):
    """A quota is identified by (tenant, kind, period): importing updates it in place."""

    class Meta:
        model = Quota
        fields = ("tenant", "kind", "period", "limit", "is_unlimited")
        export_order = fields
        import_id_fields = ("tenant", "kind", "period")
        skip_unchanged = True
        report_skipped = True
        clean_model_instances = True  # full_clean(): kind and period must be valid choices
