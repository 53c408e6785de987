"""The Python API: regenerate() and latest_job()."""

from __future__ import annotations

import pytest
from django.core.exceptions import FieldDoesNotExist
from django.db import transaction

from django_ai_fields.api import latest_job, regenerate
from django_ai_fields.models import AIJob, Status
from django_ai_fields.queues import get_queue
from tests.testapp.models import Lead

pytestmark = pytest.mark.django_db(transaction=True)


def make_lead() -> Lead:
    """A lead saved without signals, so it has no job yet."""
    (lead,) = Lead.objects.bulk_create([Lead(name="Ada", company="Acme", notes="Hot prospect")])
    return lead


def test_regenerate_one_field_returns_its_forced_job():
    lead = make_lead()
    job = regenerate(lead, "summary")

    assert isinstance(job, AIJob)
    job.refresh_from_db()
    assert (job.field_name, job.object_id, job.force, job.triggered_by) == (
        "summary",
        str(lead.pk),
        True,
        "regenerate",
    )
    assert job.status == Status.QUEUED
    assert get_queue().job_ids == [job.rq_job_id]


def test_regenerate_all_fields_returns_one_job_per_ai_field():
    lead = make_lead()
    jobs = regenerate(lead)
    assert sorted(job.field_name for job in jobs) == ["heat", "profile", "summary"]
    assert AIJob.objects.filter(force=True, triggered_by="regenerate").count() == 3


def test_regenerate_joins_the_open_job_of_a_save_and_forces_it():
    lead = Lead.objects.create(name="Ada", company="Acme", notes="Hot prospect")
    saved = AIJob.objects.get(field_name="summary")
    assert (saved.force, saved.triggered_by) == (False, "create")

    job = regenerate(lead, "summary")
    assert job.pk == saved.pk
    job.refresh_from_db()
    assert (job.force, job.triggered_by) == (True, "regenerate")
    assert AIJob.objects.filter(field_name="summary").count() == 1


def test_regenerate_enqueues_on_commit():
    lead = make_lead()
    with transaction.atomic():
        job = regenerate(lead, "heat")
        assert len(get_queue()) == 0
    job.refresh_from_db()
    assert job.status == Status.QUEUED
    assert len(get_queue()) == 1


def test_regenerate_sync_runs_the_job_now(fake_provider):
    fake_provider.reply_text = "cold"
    lead = make_lead()
    job = regenerate(lead, "heat", sync=True)

    assert (job.status, job.progress, job.output) == (Status.SUCCEEDED, 100, "cold")
    lead.refresh_from_db()
    assert lead.heat == "cold"
    assert fake_provider.calls == 1


def test_regenerate_sync_for_every_field(fake_provider):
    fake_provider.reply_text = "warm"  # valid text and choice; invalid JSON for profile
    lead = make_lead()
    jobs = {job.field_name: job for job in regenerate(lead, sync=True)}

    assert {name: job.status for name, job in jobs.items()} == {
        "summary": Status.SUCCEEDED,
        "heat": Status.SUCCEEDED,
        "profile": Status.FAILED,
    }
    assert jobs["profile"].error_code == "invalid_output"
    lead.refresh_from_db()
    assert (lead.summary, lead.heat, lead.profile) == ("warm", "warm", None)


def test_latest_job_returns_the_newest_job(fake_provider):
    fake_provider.reply_text = "hot"
    lead = make_lead()
    assert latest_job(lead, "heat") is None

    first = regenerate(lead, "heat", sync=True)
    assert latest_job(lead, "heat") == first
    second = regenerate(lead, "heat")
    assert second.pk != first.pk
    assert latest_job(lead, "heat") == second
    assert latest_job(lead, "summary") is None
    assert latest_job(make_lead(), "heat") is None  # another row's jobs are not this one's


def test_unknown_or_non_ai_fields_are_refused():
    lead = make_lead()
    with pytest.raises(FieldDoesNotExist):
        regenerate(lead, "nonexistent")
    with pytest.raises(ValueError, match="not an AI field"):
        regenerate(lead, "notes")
    with pytest.raises(FieldDoesNotExist):
        latest_job(lead, "nonexistent")
    with pytest.raises(ValueError, match="not an AI field"):
        latest_job(lead, "name")
    assert AIJob.objects.count() == 0
