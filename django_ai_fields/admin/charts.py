"""Server-rendered inline SVG for the admin: spend per day, and quota use bars.

No JavaScript and no CDN: the markup is built here, every label escaped (tenant
and model names are data, not markup).
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.db import models
from django.forms import Media
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _

from ..models import AIUsage
from ..observability import rollup_reads
from ..observability.analytics import usd

CHART_GROUPS = ("model", "tenant")
# Groups drawn in their own colour; the others are summed as "other".
MAX_SERIES = 6
COLOURS = ("#417690", "#e8a33d", "#5b9e4d", "#b5485b", "#7b5ea7", "#3f9fb5", "#999999")
WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 64, 40, 12, 28  # room for the last date label

# The charts' stylesheet, for every page that shows a chart or a quota bar.
CHART_MEDIA = Media(css={"all": ["django_ai_fields/charts.css"]})


def daily_spend(
    usage: models.QuerySet[AIUsage], by: str
) -> tuple[list[datetime.date], list[str], dict[tuple[datetime.date, str], Decimal]]:
    """(every day from the first to the last with usage, series names, cost per
    (day, series)), over the given rows (the changelist's filtered queryset)."""
    if by not in CHART_GROUPS:
        raise ValueError(f"Cannot chart by {by!r}.")
    per_group: dict[str, Decimal] = defaultdict(Decimal)
    cells: dict[tuple[datetime.date, str], Decimal] = defaultdict(Decimal)
    for row in rollup_reads.grouped(usage, ["day", by], ["cost_micro"]):  # the roll-up
        name, cost = row[by] or "-", usd(row["cost_micro"])
        per_group[name] += cost
        cells[(row["day"], name)] += cost
    if not cells:
        return [], [], {}
    ranked = sorted(per_group, key=lambda name: (-per_group[name], name))
    series, rest = ranked[:MAX_SERIES], set(ranked[MAX_SERIES:])
    if rest:
        other = _("other")
        series.append(other)
        for day, name in list(cells):
            if name in rest:
                cells[(day, other)] += cells.pop((day, name))
    first, last = min(day for day, _name in cells), max(day for day, _name in cells)
    days = [first + datetime.timedelta(n) for n in range((last - first).days + 1)]
    return days, series, dict(cells)


def spend_chart(usage: models.QuerySet[AIUsage], by: str = "model") -> SafeString:
    """Stacked bars of spend per day and ``by`` (model or tenant), as inline SVG."""
    days, series, cells = daily_spend(usage, by)
    if not days:
        return format_html('<p class="ai-chart-empty">{}</p>', _("No spend in this selection."))
    totals = [
        sum((cells.get((day, name), Decimal(0)) for name in series), Decimal(0)) for day in days
    ]
    top = max(max(totals), Decimal("0.000001"))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / len(days)
    bar_w = max(1.0, slot * 0.8)
    parts = [axes(top, plot_w, plot_h)]
    for index, day in enumerate(days):
        x = LEFT + index * slot + (slot - bar_w) / 2
        parts.append(day_bar(day, x, bar_w, series, cells, top, plot_h))
        if index in label_indexes(len(days)):
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{HEIGHT - 8}" text-anchor="middle" '
                f'font-size="11">{escape(day.isoformat())}</text>'
            )
    title = escape(_("Spend per day by %(group)s (USD)") % {"group": _(by)})
    svg = (
        f'<svg class="ai-spend-chart" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'data-days="{len(days)}"><title>{title}</title>{"".join(parts)}</svg>'
    )
    return mark_safe(svg + legend(series))


def axes(top: Decimal, plot_w: float, plot_h: float) -> str:
    base_y = TOP + plot_h
    return (
        f'<line x1="{LEFT}" y1="{base_y}" x2="{LEFT + plot_w}" y2="{base_y}" stroke="#999"/>'
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{base_y}" stroke="#999"/>'
        f'<text x="{LEFT - 4}" y="{TOP + 10}" text-anchor="end" font-size="11">'
        f"${escape(format_usd(top))}</text>"
        f'<text x="{LEFT - 4}" y="{base_y}" text-anchor="end" font-size="11">$0</text>'
    )


def day_bar(
    day: datetime.date,
    x: float,
    width: float,
    series: Sequence[str],
    cells: dict[tuple[datetime.date, str], Decimal],
    top: Decimal,
    plot_h: float,
) -> str:
    """One day's stacked rectangles, each with a tooltip."""
    y = TOP + plot_h
    out = []
    for number, name in enumerate(series):
        cost = cells.get((day, name), Decimal(0))
        if cost <= 0:
            continue
        height = float(cost / top) * plot_h
        y -= height
        tip = escape(f"{day.isoformat()} {name}: ${format_usd(cost)}")
        out.append(
            f'<rect class="ai-bar" x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" '
            f'height="{height:.1f}" fill="{COLOURS[number % len(COLOURS)]}">'
            f"<title>{tip}</title></rect>"
        )
    return "".join(out)


def label_indexes(count: int) -> set[int]:
    """Which days get a date under their bar: all of a week, else about six."""
    if count <= 7:
        return set(range(count))
    step = -(-count // 6)
    return {*range(0, count - step // 2, step), count - 1}


def legend(series: Sequence[str]) -> str:
    items = "".join(
        f'<li><span class="ai-swatch" style="background:{COLOURS[n % len(COLOURS)]}"></span>'
        f"{escape(name)}</li>"
        for n, name in enumerate(series)
    )
    return f'<ul class="ai-chart-legend">{items}</ul>'


def format_usd(value: Decimal) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".") if value < 1 else f"{value:.2f}"


def quota_bar(used: int, limit: int, label: str) -> SafeString:
    """A bar of used / limit with its figures."""
    share = 1.0 if limit <= 0 else min(1.0, used / limit)  # a zero limit allows nothing
    level = "full" if share >= 1 else "high" if share >= 0.8 else "ok"
    return format_html(
        '<span class="ai-quota ai-quota--{}" title="{}%">'
        '<span class="ai-quota-bar"><span class="ai-quota-fill" style="width:{}%"></span></span>'
        " {}</span>",
        level,
        f"{share * 100:.0f}",
        f"{share * 100:.1f}",
        label,
    )


def chart_context(
    usage: models.QuerySet[AIUsage], by: str, query: dict[str, Any]
) -> dict[str, Any]:
    """What the usage changelist template needs: the chart and links to switch grouping."""
    links = [
        {
            "by": name,
            "label": _(name),
            "url": "?" + urlencode({**query, "chart_by": name}),
            "active": name == by,
        }
        for name in CHART_GROUPS
    ]
    return {"svg": spend_chart(usage, by), "links": links, "by": by}
