"""{% ai_status %} badges, the shipped template, and one query for a whole list."""

from __future__ import annotations

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.template import Context, Template
from django.test.utils import CaptureQueriesContext

from django_ai_fields.models import AIJob
from django_ai_fields.status import with_ai_status
from tests.testapp.models import Lead

LIST_TEMPLATE = (
    '{% load ai_fields %}{% for lead in leads %}{% ai_status lead "summary" %}'
    '{% ai_status lead "heat" %}{% endfor %}'
)


def render(source: str, **context: object) -> str:
    return Template(source).render(Context(context))


def badge(lead: Lead, field: str = "summary") -> str:
    return render("{% load ai_fields %}{% ai_status lead field %}", lead=lead, field=field)


def set_job(lead: Lead, field: str, **values: object) -> None:
    AIJob.objects.filter(object_id=str(lead.pk), field_name=field).update(**values)


@pytest.mark.django_db
class TestBadge:
    def test_an_unfinished_job_shows_state_progress_and_the_status_url(self):
        lead = Lead.objects.create(name="Ada", notes="x")
        set_job(lead, "summary", status="running", progress=30)
        html = badge(lead)
        assert 'class="ai-status ai-status--running"' in html
        assert "Running 30%" in html
        assert f'data-status-url="/ai/status/testapp.lead/{lead.pk}/summary/"' in html

    def test_a_failed_job_shows_its_error_message(self):
        lead = Lead.objects.create(name="Ada")
        set_job(lead, "summary", status="failed", error_code="auth", error="HTTP 401: bad key")
        html = badge(lead)
        assert "ai-status--failed" in html
        assert "Failed: HTTP 401: bad key" in html
        assert "data-status-url" not in html  # finished: nothing to poll

    def test_a_succeeded_job_shows_nothing_scary(self):
        lead = Lead.objects.create(name="Ada")
        set_job(lead, "summary", status="succeeded", progress=100, error="old noise")
        html = badge(lead)
        assert "ai-status--succeeded" in html
        assert ">Generated<" in html
        assert "old noise" not in html
        assert "data-status-url" not in html

    def test_the_latest_job_wins(self):
        lead = Lead.objects.create(name="Ada")
        set_job(lead, "summary", status="failed", error="first try")
        ct = ContentType.objects.get_for_model(Lead)
        AIJob.objects.create(
            content_type=ct, object_id=str(lead.pk), field_name="summary", status="queued"
        )
        assert "ai-status--queued" in badge(lead)

    def test_a_row_without_jobs_says_not_generated(self):
        lead = Lead.objects.create(name="Ada")
        AIJob.objects.all().delete()
        assert "Not generated" in badge(lead)

    def test_the_template_can_be_overridden(self, settings, tmp_path):
        override = tmp_path / "django_ai_fields" / "status.html"
        override.parent.mkdir()
        override.write_text("<b>{{ state }}/{{ field_name }}</b>")
        settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [str(tmp_path)]}]
        lead = Lead.objects.create(name="Ada")
        assert badge(lead) == "<b>pending/summary</b>"

    def test_the_script_tag_points_at_the_shipped_file(self, settings):
        settings.STATIC_URL = "/static/"
        html = render("{% load ai_fields %}{% ai_status_js %}")
        assert html == '<script src="/static/django_ai_fields/status.js" defer></script>'


@pytest.mark.django_db
class TestQueryCount:
    """One query for every row's statuses, whatever the number of rows."""

    @pytest.fixture(autouse=True)
    def warm_content_types(self):
        ContentType.objects.get_for_model(Lead)

    def leads(self, count: int) -> None:
        for i in range(count):
            Lead.objects.create(name=f"Lead {i}", notes="n")

    @pytest.mark.parametrize("count", [1, 50])
    def test_with_ai_status_costs_two_queries_for_any_list(self, count, django_assert_num_queries):
        self.leads(count)
        with django_assert_num_queries(2):  # the rows, then all their statuses
            html = render(LIST_TEMPLATE, leads=with_ai_status(Lead.objects.all()))
        assert html.count("ai-status--pending") == 2 * count

    @pytest.mark.parametrize("count", [1, 50])
    def test_the_prefetch_tag_costs_two_queries_for_any_list(
        self, count, django_assert_num_queries
    ):
        self.leads(count)
        source = LIST_TEMPLATE.replace("{% for", "{% ai_status_prefetch leads %}{% for", 1)
        with django_assert_num_queries(2):
            html = render(source, leads=Lead.objects.all())
        assert html.count("ai-status--pending") == 2 * count

    def test_without_the_prefetch_each_badge_costs_a_query(self):
        self.leads(5)
        with CaptureQueriesContext(connection) as queries:
            render(LIST_TEMPLATE, leads=Lead.objects.all())
        assert len(queries) == 1 + 5 * 2

    def test_the_cache_holds_the_newest_job_of_each_row_and_field(self):
        self.leads(3)
        first = Lead.objects.order_by("pk").first()
        set_job(first, "heat", status="failed", error="nope")
        ct = ContentType.objects.get_for_model(Lead)
        newer = AIJob.objects.create(
            content_type=ct, object_id=str(first.pk), field_name="heat", status="queued"
        )
        rows = with_ai_status(list(Lead.objects.order_by("pk")), ["heat"])
        assert rows[0]._ai_status_cache["heat"].pk == newer.pk
        assert all(set(row._ai_status_cache) == {"heat"} for row in rows)
        assert rows[1]._ai_status_cache["heat"].status == "pending"


@pytest.mark.django_db(transaction=True)
def test_the_badge_follows_a_real_job_to_succeeded(fake_provider, worker):
    lead = Lead.objects.create(name="Ada", company="Acme", notes="hot")
    assert "ai-status--queued" in badge(lead)
    worker.drain()
    lead.refresh_from_db()
    assert lead.summary
    assert ">Generated<" in badge(lead)
