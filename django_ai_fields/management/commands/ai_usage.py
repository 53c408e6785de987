"""``ai_usage``: a cost table per tenant, model and month."""

from __future__ import annotations

import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from ...models import AIUsage, CallState
from ...observability.analytics import unknown_cost_models, usage_by

COLUMNS = ("Tenant", "Model", "Calls", "Input tokens", "Output tokens", "Cost (USD)")


def month_range(text: str | None) -> tuple[str, datetime.datetime, datetime.datetime]:
    """(label, start, end) of a YYYY-MM month in the current time zone (default: this month)."""
    if text:
        try:
            first = datetime.datetime.strptime(text, "%Y-%m").date()
        except ValueError:
            raise CommandError(f"--month {text!r}: use YYYY-MM, e.g. 2025-01.") from None
    else:
        first = timezone.localdate().replace(day=1)
    following = (first + datetime.timedelta(days=32)).replace(day=1)
    start = timezone.make_aware(datetime.datetime.combine(first, datetime.time.min))
    end = timezone.make_aware(datetime.datetime.combine(following, datetime.time.min))
    return first.strftime("%Y-%m"), start, end


def format_table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = []
    for number, row in enumerate(rows):
        cells = [
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if number == 0:
            lines.append("  ".join("-" * width for width in widths))
    return lines


def added_up(groups: list[dict[str, Any]]) -> dict[str, Any]:
    """The table's columns summed over its rows (exact: integers and Decimals)."""
    names = ("calls", "input_tokens", "output_tokens", "cost_usd")
    return {name: sum(group[name] for group in groups) for name in names}


def cells(tenant: str, model: str, data: dict[str, Any]) -> tuple[str, ...]:
    return (
        tenant,
        model,
        str(data["calls"]),
        str(data["input_tokens"]),
        str(data["output_tokens"]),
        f"{data['cost_usd']:.6f}",
    )


class Command(BaseCommand):
    help = "Calls, tokens and cost per tenant and model for one month."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--tenant", help="Only this tenant ('' for rows without a tenant).")
        parser.add_argument("--month", help="YYYY-MM (default: the current month).")

    def handle(self, *args: Any, **options: Any) -> None:
        label, start, end = month_range(options["month"])
        usage = AIUsage.objects.filter(created_at__gte=start, created_at__lt=end)
        if options["tenant"] is not None:
            usage = usage.filter(tenant=options["tenant"])
        groups = usage_by(usage, ["tenant", "model"])
        scope = f" for tenant {options['tenant']!r}" if options["tenant"] is not None else ""
        if not groups:
            self.stdout.write(f"No AI usage in {label}{scope}.")
            return
        self.stdout.write(f"AI usage in {label}{scope}:")
        rows = [COLUMNS, *(cells(g["tenant"] or "-", g["model"], g) for g in groups)]
        rows.append(cells("Total", "", added_up(groups)))
        for line in format_table(rows):
            self.stdout.write(line)
        self.write_unknown_costs(usage)
        self.write_unanswered(usage)

    def write_unknown_costs(self, usage: Any) -> None:
        """Calls whose model had no price: their cost is not in the table."""
        unknown = unknown_cost_models(usage)
        if unknown:
            self.stdout.write(
                f"Unknown cost: {sum(unknown.values())} call(s) of {', '.join(sorted(unknown))} "
                "(no price known; not in the totals). Add them to AI_FIELDS['PRICING']."
            )

    def write_unanswered(self, usage: Any) -> None:
        """Calls sent whose answer is not logged (in flight, or their worker died
        mid-call): in the table at the worst case their quota reservation held."""
        unanswered = usage.filter(call_state=CallState.SENT).count()
        if unanswered:
            self.stdout.write(
                f"No answer: {unanswered} call(s) sent with no answer logged (in flight, "
                "or their worker died mid-call), counted at their worst case (every "
                "input byte a token, max_tokens of output, at the model's prices)."
            )
