"""Issue 15: the spend-per-day chart in the AIUsage changelist (inline SVG, server
rendered) over 0, 1 and 30 days, following the changelist's filters."""

from __future__ import annotations

import datetime
import re
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from django_ai_fields.models import AIUsage
from tests.surfaces import make_user

pytestmark = pytest.mark.django_db

USAGE = "/admin/django_ai_fields/aiusage/"


@pytest.fixture
def root() -> Client:
    client = Client()
    client.force_login(make_user("root", superuser=True))
    return client


def spend(day: datetime.date, cost: str, model="gpt-4o-mini", tenant="acme") -> None:
    row = AIUsage.objects.create(tenant=tenant, provider="openai", model=model, cost_usd=cost)
    moment = timezone.make_aware(datetime.datetime.combine(day, datetime.time(12)))
    AIUsage.objects.filter(pk=row.pk).update(created_at=moment)


def chart(html: str) -> str:
    found = re.search(r'<svg class="ai-spend-chart".*?</svg>', html, re.S)
    assert found, "no chart on the page"
    return found.group(0)


def tooltips(svg: str) -> list[str]:
    return re.findall(r"<rect class=\"ai-bar\"[^>]*><title>([^<]*)</title>", svg)


def test_no_usage_shows_no_chart_but_says_so(root):
    html = root.get(USAGE).content.decode()
    assert "ai-spend-chart" not in html
    assert "No spend in this selection." in html


def test_one_day_is_one_bar(root):
    today = timezone.localdate()
    spend(today, "0.001000")
    spend(today, "0.000500")
    svg = chart(root.get(USAGE).content.decode())
    assert 'data-days="1"' in svg
    assert tooltips(svg) == [f"{today.isoformat()} gpt-4o-mini: $0.0015"]


def test_thirty_days_stacked_by_model_with_every_day_on_the_axis(root):
    first = timezone.localdate() - datetime.timedelta(days=29)
    for n in range(30):
        spend(first + datetime.timedelta(days=n), "0.000100")
        if n % 10 == 0:
            spend(first + datetime.timedelta(days=n), "0.000200", model="claude-haiku-4-5")
    html = root.get(USAGE).content.decode()
    svg = chart(html)
    assert 'data-days="30"' in svg
    tips = tooltips(svg)
    assert len(tips) == 33  # 30 days of one model, 3 of the other, stacked
    assert f"{first.isoformat()} claude-haiku-4-5: $0.0002" in tips
    assert first.isoformat() in svg and timezone.localdate().isoformat() in svg  # axis labels
    assert '<ul class="ai-chart-legend">' in html and "claude-haiku-4-5" in html


def test_the_chart_follows_the_filters_and_groups_by_tenant(root):
    today = timezone.localdate()
    spend(today, "0.000300", tenant="acme")
    spend(today, "0.000700", tenant="<b>evil</b>")
    spend(today - datetime.timedelta(days=3), "0.000100", tenant="acme", model="gpt-5.4")
    svg = chart(root.get(USAGE, {"model": "gpt-4o-mini"}).content.decode())
    assert 'data-days="1"' in svg  # the gpt-5.4 day is filtered out
    assert tooltips(svg) == [f"{today.isoformat()} gpt-4o-mini: $0.001"]
    response = root.get(USAGE, {"model": "gpt-4o-mini", "chart_by": "tenant"})
    assert (
        response.status_code == 200 and "?e=1" not in response.url
        if hasattr(response, "url")
        else True
    )
    svg = chart(response.content.decode())
    assert sorted(tooltips(svg)) == sorted(
        [
            f"{today.isoformat()} &lt;b&gt;evil&lt;/b&gt;: $0.0007",
            f"{today.isoformat()} acme: $0.0003",
        ]
    )
    assert "<b>evil</b>" not in response.content.decode()  # tenant names are escaped


def test_unknown_costs_are_counted_in_the_totals(root):
    AIUsage.objects.create(tenant="acme", provider="openai", model="mystery", cost_usd=None)
    AIUsage.objects.create(
        tenant="acme", provider="openai", model="gpt-4o-mini", cost_usd=Decimal("0.1")
    )
    html = root.get(USAGE).content.decode()
    assert "1 call has an unknown cost" in html
