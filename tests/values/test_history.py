"""History and revert (issue 21, point 3): the values a field held, newest first, and
a revert to one of them, kept like a hand edit; ``ai_cleanup`` keeps HISTORY_KEEP."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.template import Context, Template
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_ai_fields import api
from django_ai_fields.models import AIJob, Status
from django_ai_fields.values.history import RevertRefused
from tests.testapp.models import Article, Voucher

pytestmark = pytest.mark.django_db(transaction=True)


def article_with_history(fake_provider) -> Article:
    """Blurbs: an answer, a person's edit, another answer (newest)."""
    article = Article.objects.create(title="Tea")
    api.regenerate(article, "blurb", sync=True)  # fake reply #1
    article = Article.objects.get(pk=article.pk)
    article.blurb = "Tea, by hand"
    article.save()
    api.regenerate(article, "blurb", sync=True)  # fake reply #2
    return Article.objects.get(pk=article.pk)


def test_history_lists_the_values_newest_first_with_their_source(fake_provider):
    article = article_with_history(fake_provider)
    with CaptureQueriesContext(connection) as captured:
        entries = api.history(article, "blurb")
    assert len(captured) == 1
    assert [(e.value, e.source, e.model) for e in entries] == [
        ("fake reply #2", "ai", "gpt-4o-mini"),
        ("Tea, by hand", "manual", ""),
        ("fake reply #1", "ai", "gpt-4o-mini"),
    ]
    assert entries[0].created_at > entries[1].created_at > entries[2].created_at
    assert all(entry.job.status == Status.SUCCEEDED for entry in entries)
    assert [e.value for e in api.history(article, "blurb", limit=2)] == [
        "fake reply #2",
        "Tea, by hand",
    ]


def test_a_revert_writes_the_value_back_as_a_hand_edit_kept_across_a_trigger_change(
    fake_provider,
):
    article = article_with_history(fake_provider)
    oldest = api.history(article, "blurb")[-1].job
    record = api.revert(article, "blurb", oldest)
    assert article.blurb == Article.objects.get(pk=article.pk).blurb == "fake reply #1"
    assert (record.triggered_by, record.status, record.output) == (
        "revert",
        Status.SUCCEEDED,
        "fake reply #1",
    )
    newest = api.history(article, "blurb")[0]
    assert (newest.value, newest.source) == ("fake reply #1", "revert")
    badge = Template('{% load ai_fields %}{% ai_status obj "blurb" %}').render(
        Context({"obj": article})
    )
    assert "Edited by hand" in badge
    article.save()  # the reverted value is no new edit of this instance
    assert AIJob.objects.filter(triggered_by="manual").count() == 1

    calls = fake_provider.calls
    article = Article.objects.get(pk=article.pk)
    article.title = "Green tea"  # a trigger change
    article.save()
    assert fake_provider.calls == calls
    assert not AIJob.objects.filter(status__in=[Status.PENDING, Status.QUEUED]).exists()
    assert Article.objects.get(pk=article.pk).blurb == "fake reply #1"
    assert not api.is_stale(article, "blurb")

    api.regenerate(article, "blurb", sync=True)  # an explicit regenerate ends it
    assert Article.objects.get(pk=article.pk).blurb == "fake reply #3"


def test_a_revert_to_a_job_of_another_row_is_refused(fake_provider):
    article = article_with_history(fake_provider)
    other = Article.objects.create(title="Coffee")
    api.regenerate(other, "blurb", sync=True)
    with pytest.raises(RevertRefused, match="wrote no value of this row's field blurb"):
        api.revert(article, "blurb", api.latest_job(other, "blurb"))
    assert Article.objects.get(pk=article.pk).blurb == "fake reply #2"


def test_ai_cleanup_keeps_the_newest_values_of_existing_rows(fake_provider, settings):
    settings.AI_FIELDS = {**settings.AI_FIELDS, "HISTORY_KEEP": 2}
    article = article_with_history(fake_provider)  # three value jobs
    gone = Article.objects.create(title="Gone")
    api.regenerate(gone, "blurb", sync=True)
    Article.objects.filter(pk=gone.pk).delete()
    failed = AIJob.objects.create(
        content_type=AIJob.objects.first().content_type,
        object_id=str(article.pk),
        field_name="blurb",
        status=Status.FAILED,
    )
    AIJob.objects.update(finished_at=timezone.now() - timedelta(days=40))
    call_command("ai_cleanup", "--older-than", "30d", stdout=StringIO())
    kept = AIJob.objects.order_by("pk")
    assert [job.output for job in kept] == ["Tea, by hand", "fake reply #2"]
    assert not AIJob.objects.filter(pk=failed.pk).exists()
    assert [e.value for e in api.history(article, "blurb")] == ["fake reply #2", "Tea, by hand"]


def test_ai_cleanup_keeps_the_value_of_a_row_with_a_uuid_primary_key():
    voucher = Voucher.objects.create(code="TEA10")
    api.regenerate(voucher, "blurb", sync=True)
    AIJob.objects.update(finished_at=timezone.now() - timedelta(days=40))
    call_command("ai_cleanup", "--older-than", "30d", stdout=StringIO())
    assert [entry.source for entry in api.history(voucher, "blurb")] == ["ai"]
