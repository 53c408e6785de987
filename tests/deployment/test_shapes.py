"""Model shapes real projects use (issue 18, docs/deployment.md): a composite primary
key (Django 5.2's ``CompositePrimaryKey``), an AI field on an abstract base inherited
by two models, saves through a proxy model, and a default manager that hides rows.

Each runs the real worker (an in-process RQ worker on fakeredis, ``rqworker``
processes with REDIS_URL) against the test database."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import models
from django.test.utils import isolate_apps
from django.urls import reverse
from django.utils import timezone

from django_ai_fields import api, row_keys
from django_ai_fields.fields import AIFieldMixin, AIGeneratedField, get_ai_field
from django_ai_fields.models import AIJob, Status
from django_ai_fields.status import job_for
from tests.fake_provider import FakeProvider
from tests.surfaces import make_user
from tests.testapp.models import Article, ArticleProxy, Enrollment, Notice, Shipment

pytestmark = pytest.mark.django_db(transaction=True)

# A key part with the characters a naive encoding would break on.
AWKWARD = 'maths, "advanced" / 2\\b'


@contextmanager
def changed(field: AIFieldMixin, **options: object) -> Iterator[None]:
    original = field.ai
    field.ai = dataclasses.replace(original, **options)
    try:
        yield
    finally:
        field.ai = original


def jobs_of(model: type[models.Model]) -> list[AIJob]:
    return list(AIJob.objects.filter(content_type__model=model._meta.model_name).order_by("pk"))


# -- composite primary keys -----------------------------------------------------------


def test_a_composite_key_save_creates_a_job_the_worker_completes(
    fake_provider: FakeProvider, worker
) -> None:
    Enrollment.objects.create(course=AWKWARD, student=7, note="keen")
    Enrollment.objects.create(course=AWKWARD, student=8, note="late")

    (first, second) = jobs_of(Enrollment)
    assert first.object_id == '["maths, \\"advanced\\" / 2\\\\b","7"]'
    assert row_keys.decode(Enrollment, second.object_id) == (AWKWARD, 8)
    worker.drain()

    advice = sorted(row.advice for row in Enrollment.objects.all())
    assert advice == ["fake reply #1", "fake reply #2"]
    assert [job.status for job in jobs_of(Enrollment)] == [Status.SUCCEEDED] * 2
    prompts = sorted(str(r.body["messages"][-1]["content"]) for r in fake_provider.requests)
    assert [(AWKWARD in p, "keen" in p, "late" in p) for p in prompts] == [
        (True, True, False),
        (True, False, True),
    ]
    row = Enrollment.objects.get(pk=(AWKWARD, 7))
    assert job_for(row, "advice") == api.latest_job(row, "advice") == jobs_of(Enrollment)[0]
    assert jobs_of(Enrollment)[0].get_target() == row


def test_a_composite_key_row_is_regenerated_and_its_stale_values_found(
    fake_provider: FakeProvider, worker
) -> None:
    keen = Enrollment.objects.create(course=AWKWARD, student=7, note="keen")
    late = Enrollment.objects.create(course="art", student=7, note="late")
    worker.drain()
    keen.refresh_from_db()
    before = keen.advice
    advice = get_ai_field(Enrollment, "advice")
    assert not api.stale(Enrollment, "advice").exists()

    with changed(advice, prompt="Advise briefly on {course}: {note}"):
        assert set(api.stale(Enrollment, "advice")) == {keen, late}
        assert api.is_stale(keen, "advice")
        api.regenerate(keen, "advice", sync=True)  # here: under the changed definition
        assert list(api.stale(Enrollment, "advice")) == [late]
        assert not api.is_stale(keen, "advice")

    keen.refresh_from_db()
    assert keen.advice == "fake reply #3"
    assert [entry.value for entry in api.history(keen, "advice")] == ["fake reply #3", before]


def test_a_composite_key_backfill_pages_through_every_row(
    fake_provider: FakeProvider, worker
) -> None:
    Enrollment.objects.bulk_create(  # no signals: no jobs yet
        [Enrollment(course=course, student=n) for course in ("a/b", 'c"d') for n in range(3)]
    )
    call_command("ai_regenerate", "testapp.Enrollment", batch_size=4, stdout=io.StringIO())
    worker.drain()

    assert not Enrollment.objects.filter(advice__isnull=True).exists()
    assert len(fake_provider.requests) == 6
    keys = {job.object_id for job in jobs_of(Enrollment)}
    assert keys == {row_keys.key_of(row) for row in Enrollment.objects.all()}


@isolate_apps("tests.testapp")
def test_a_composite_key_part_jobs_cannot_record_is_a_check_error() -> None:
    class Booking(models.Model):
        pk = models.CompositePrimaryKey("day", "room")
        day = models.DateField()
        room = models.IntegerField()
        summary = AIGeneratedField(prompt="Summarize the booking of {room}.", null=True)

        class Meta:
            app_label = "testapp"

    errors = [e for e in Booking.check() if e.id == "django_ai_fields.E054"]
    assert len(errors) == 1
    assert errors[0].msg.startswith("testapp.Booking.summary cannot be generated")
    assert "'day' (DateField)" in errors[0].msg
    assert not [e for e in Enrollment.check() if e.id == "django_ai_fields.E054"]


def test_a_composite_key_too_long_for_object_id_is_refused_not_cut() -> None:
    assert row_keys.key_of_pk(Enrollment, ("x" * 40, 1)) == '["' + "x" * 40 + '","1"]'
    with pytest.raises(row_keys.KeyTooLong, match=r"testapp\.Enrollment"):
        row_keys.key_of_pk(Enrollment, ("x" * 300, 1))


# -- also-tried shapes ----------------------------------------------------------------


def test_an_abstract_base_field_works_on_both_models(fake_provider: FakeProvider, worker) -> None:
    article = Article.objects.create(title="Tea")
    shipment = Shipment.objects.create(title="Crate", weight=3)
    worker.drain()

    article.refresh_from_db()
    shipment.refresh_from_db()
    assert {article.blurb, shipment.blurb} == {"fake reply #1", "fake reply #2"}
    assert api.latest_job(article, "blurb").content_type.model == "article"  # type: ignore[union-attr]
    assert api.latest_job(shipment, "blurb").content_type.model == "shipment"  # type: ignore[union-attr]


def test_a_save_through_a_proxy_model_makes_the_concrete_models_job(
    fake_provider: FakeProvider, worker
) -> None:
    proxied = ArticleProxy.objects.create(title="Cocoa")
    proxied.title = "Hot cocoa"
    proxied.save()  # coalesces into the same open job
    worker.drain()

    (job,) = jobs_of(Article)
    assert job.status == Status.SUCCEEDED
    assert Article.objects.get(pk=proxied.pk).blurb == "fake reply #1"
    assert "Hot cocoa" in str(fake_provider.requests[0].body["messages"][-1]["content"])


def test_rows_the_default_manager_hides_are_still_generated(
    fake_provider: FakeProvider, worker
) -> None:
    notice = Notice.objects.create(text="Closed on Monday", archived=True)
    assert not Notice.objects.filter(pk=notice.pk).exists()  # hidden by the manager
    worker.drain()

    (job,) = jobs_of(Notice)
    assert job.status == Status.SUCCEEDED
    assert Notice._base_manager.get(pk=notice.pk).gist == "fake reply #1"
    assert job.get_target() == notice
    api.regenerate(notice, "gist")
    worker.drain()
    assert Notice._base_manager.get(pk=notice.pk).gist == "fake reply #2"


def test_ai_cleanup_keeps_the_value_of_a_composite_key_row_and_drops_a_deleted_ones(
    fake_provider: FakeProvider, worker
) -> None:
    kept = Enrollment.objects.create(course=AWKWARD, student=1, note="stays")
    gone = Enrollment.objects.create(course=AWKWARD, student=2, note="leaves")
    worker.drain()
    gone_key = row_keys.key_of(gone)
    gone.delete()
    AIJob.objects.update(finished_at=timezone.now() - timedelta(days=90))

    call_command("ai_cleanup", "--older-than", "30d", stdout=io.StringIO())

    assert [job.object_id for job in jobs_of(Enrollment)] == [row_keys.key_of(kept)]
    assert gone_key != row_keys.key_of(kept)


def test_the_row_status_view_finds_a_composite_key_row(
    fake_provider: FakeProvider, worker, client
) -> None:
    row = Enrollment.objects.create(course="a/b,c", student=3, note="n")
    worker.drain()
    client.force_login(make_user("root", superuser=True))
    status_url = reverse(
        "django_ai_fields:row-status", args=["testapp.enrollment", row_keys.key_of(row), "advice"]
    )

    body = client.get(status_url).json()

    assert body["pk"] == '["a/b,c","3"]'
    assert body["status"] == Status.SUCCEEDED
    assert client.get(status_url.replace("%5B", "%5B%5B")).status_code == 404
