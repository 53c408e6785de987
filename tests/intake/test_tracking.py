"""Change detection: which saves request a generation, and what a quiet save costs."""

from __future__ import annotations

import inspect
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import django
import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.test.utils import CaptureQueriesContext

from django_ai_fields import signals
from django_ai_fields.intake.tracking import SNAPSHOT_ATTR, _from_db_hook
from django_ai_fields.models import AIJob
from tests.testapp.models import Article, Lead, PlainLead, Product, Survey

pytestmark = pytest.mark.django_db

ROW = {"name": "Ada", "company": "Acme", "notes": "Wants 20 seats", "ssn": "123-45-6789"}
LEAD_AI_FIELDS = {"summary", "heat", "profile"}


class Requested:
    """Field names of every generation requested (the public ``job_requested`` signal)."""

    def __init__(self) -> None:
        self.fields: list[str] = []

    def __call__(self, sender: type, job: AIJob, **kwargs: Any) -> None:
        self.fields.append(job.field_name)

    def take(self) -> set[str]:
        """The fields requested since the last take()."""
        taken, self.fields = set(self.fields), []
        return taken


@pytest.fixture
def requested() -> Iterator[Requested]:
    recorder = Requested()
    signals.job_requested.connect(recorder, dispatch_uid="test_tracking")
    yield recorder
    signals.job_requested.disconnect(dispatch_uid="test_tracking")


def loaded(model: type, **values: Any) -> Any:
    """A row written without signals (no job), then read back as a fresh instance."""
    model.objects.bulk_create([model(**values)])
    return model.objects.latest("pk")


def test_create_requests_every_field_with_input(requested: Requested) -> None:
    lead = Lead.objects.create(**ROW)
    assert requested.take() == LEAD_AI_FIELDS
    jobs = AIJob.objects.filter(object_id=str(lead.pk))
    assert {j.field_name for j in jobs} == LEAD_AI_FIELDS
    assert {(j.status, j.triggered_by) for j in jobs} == {("pending", "create")}


def test_create_with_all_triggers_empty_requests_nothing(requested: Requested) -> None:
    Article.objects.create(title="")
    # heat and profile read only {notes}; summary also reads score, and 0 is a value.
    Lead.objects.create(name="", notes="")
    assert requested.take() == {"summary"}
    assert list(AIJob.objects.values_list("field_name", flat=True)) == ["summary"]


def test_save_without_trigger_change_costs_only_the_update(requested: Requested) -> None:
    lead = loaded(Lead, **ROW)
    plain = loaded(PlainLead, **ROW)
    with CaptureQueriesContext(connection) as plain_queries:
        plain.save()
    with CaptureQueriesContext(connection) as lead_queries:
        lead.save()
    assert len(lead_queries) == len(plain_queries) == 1
    assert lead_queries[0]["sql"].startswith("UPDATE")
    assert requested.take() == set()
    assert not AIJob.objects.exists()


def test_changing_an_excluded_or_untracked_ai_field_costs_only_the_update(
    requested: Requested,
) -> None:
    """profile is a JSON AI field: its hand edits are not followed by default."""
    lead = loaded(Lead, **ROW)
    plain = loaded(PlainLead, **ROW)
    for row in (lead, plain):
        row.ssn, row.profile = "999-99-9999", {"a": 1}
    with CaptureQueriesContext(connection) as plain_queries:
        plain.save()
    with CaptureQueriesContext(connection) as lead_queries:
        lead.save()
    assert len(lead_queries) == len(plain_queries) == 1
    assert requested.take() == set()
    assert not AIJob.objects.exists()


@pytest.mark.parametrize(
    ("attribute", "value", "expected"),
    [
        ("notes", "Now wants 50 seats", {"heat", "profile", "summary"}),
        ("score", 7, {"summary"}),  # summary reads {*}
        ("name", "Ada L.", {"summary"}),
        ("ssn", "000-00-0000", set()),  # excluded: never a trigger
    ],
)
def test_a_trigger_change_requests_only_its_dependents(
    requested: Requested, attribute: str, value: object, expected: set[str]
) -> None:
    lead = loaded(Lead, **ROW)
    setattr(lead, attribute, value)
    lead.save()
    assert requested.take() == expected
    jobs = AIJob.objects.filter(object_id=str(lead.pk))
    assert {j.field_name for j in jobs} == expected
    assert {j.triggered_by for j in jobs} <= {"save"}


def test_update_fields_limits_the_triggers_considered(requested: Requested) -> None:
    lead = loaded(Lead, **ROW)
    lead.notes = "Changed in memory only"
    lead.score = 5
    lead.save(update_fields=["score"])
    assert requested.take() == {"summary"}
    lead.save(update_fields=["ssn"])
    assert requested.take() == set()
    lead.save(update_fields=["notes"])
    assert requested.take() == {"heat", "profile", "summary"}


def test_deferred_fields_are_not_snapshotted_and_do_not_trigger(requested: Requested) -> None:
    pk = loaded(Lead, **ROW).pk
    plain_pk = loaded(PlainLead, **ROW).pk
    lead = Lead.objects.only("name").get(pk=pk)
    plain = PlainLead.objects.only("name").get(pk=plain_pk)
    assert set(lead.__dict__[SNAPSHOT_ATTR]) == {"name"}
    with CaptureQueriesContext(connection) as plain_queries:
        plain.save()
    with CaptureQueriesContext(connection) as lead_queries:
        lead.save()
    assert len(lead_queries) == len(plain_queries) == 1
    assert requested.take() == set()
    assert Lead.objects.get(pk=pk).notes == ROW["notes"]


def test_a_loaded_trigger_of_a_deferred_instance_still_triggers(requested: Requested) -> None:
    lead = Lead.objects.only("name").get(pk=loaded(Lead, **ROW).pk)
    lead.name = "Ada L."
    lead.save()
    assert requested.take() == {"summary"}


def test_raw_saves_request_nothing(requested: Requested) -> None:
    Lead(pk=4242, **ROW).save_base(raw=True)
    assert Lead.objects.filter(pk=4242).exists()
    assert requested.take() == set()
    assert not AIJob.objects.exists()


def test_loaddata_requests_nothing(requested: Requested, tmp_path: Path) -> None:
    fixture = tmp_path / "leads.json"
    rows = [
        {"model": "testapp.lead", "pk": 77, "fields": ROW},
        {"model": "testapp.article", "pk": 78, "fields": {"title": "Tea"}},
    ]
    fixture.write_text(json.dumps(rows))
    call_command("loaddata", str(fixture), verbosity=0)
    assert Lead.objects.get(pk=77).notes == ROW["notes"]
    assert Article.objects.get(pk=78).title == "Tea"
    assert requested.take() == set()
    assert not AIJob.objects.exists()


def test_in_place_mutation_of_a_json_trigger_is_detected(requested: Requested) -> None:
    survey = loaded(Survey, answers={"q1": "yes", "q2": ["a"]})
    survey.save()
    assert requested.take() == set()
    survey.answers["q2"].append("b")
    survey.save()
    assert requested.take() == {"digest"}


def test_auto_regenerate_false_never_requests_on_save(requested: Requested) -> None:
    product = Product.objects.create(title="Mug", price="9.50", tags=["kitchen"])
    # keywords reads {title} and {tags} but has auto_regenerate=False.
    assert requested.take() == {"tagline"}
    product.tags.append("gift")
    product.save()
    assert requested.take() == set()
    product.title = "Big mug"
    product.save()
    assert requested.take() == {"tagline"}
    assert set(AIJob.objects.values_list("field_name", flat=True)) == {"tagline"}


def test_the_snapshot_is_refreshed_after_save(requested: Requested) -> None:
    lead = loaded(Lead, **ROW)
    lead.notes = "Second thoughts"
    lead.save()
    assert requested.take() == {"heat", "profile", "summary"}
    lead.notes = "Second thoughts"
    lead.save()
    assert requested.take() == set()
    survey = loaded(Survey, answers={"q1": "yes"})
    survey.answers["q1"] = "no"
    survey.save()
    survey.save()
    assert requested.fields == ["digest"]


def test_the_snapshot_is_refreshed_after_create(requested: Requested) -> None:
    lead = Lead.objects.create(**ROW)
    requested.take()
    lead.save()
    assert requested.take() == set()


def test_historical_models_in_data_migrations_request_nothing(requested: Requested) -> None:
    state = MigrationLoader(connection).project_state(("testapp", "0001_initial"))
    HistoricalLead = state.apps.get_model("testapp", "Lead")
    lead = HistoricalLead.objects.create(**ROW)
    lead.notes = "Edited by a data migration"
    lead.save()
    assert Lead.objects.get(pk=lead.pk).notes == "Edited by a data migration"
    assert requested.take() == set()
    assert not AIJob.objects.exists()


@pytest.mark.skipif(django.VERSION < (6, 1), reason="fetch modes are new in Django 6.1")
def test_a_tracked_model_keeps_the_querysets_fetch_mode(requested: Requested) -> None:
    """Django 6.1 hands from_db() the queryset's fetch mode; the tracker's wrapper passes
    it on (and so raises no RemovedInDjango2028Warning about a from_db() without it)."""
    from django.core.exceptions import FieldFetchBlocked
    from django.db.models import FETCH_RAISE

    loaded(Lead, **ROW)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lead = Lead.objects.fetch_mode(FETCH_RAISE).defer("ssn").get()
    with pytest.raises(FieldFetchBlocked):
        lead.ssn  # noqa: B018
    lead.name = "Ada L."
    lead.save()
    assert requested.take() == {"summary"}


def test_a_from_db_written_before_fetch_modes_keeps_its_signature() -> None:
    """A model's own from_db() without fetch_mode is wrapped without it too, so Django
    6.1 warns about that override (and passes no fetch_mode) as it would without us."""

    def legacy(cls: type, db: str, field_names: Any, values: Any) -> Any:
        return cls()

    def current(
        cls: type, db: str, field_names: Any, values: Any, *, fetch_mode: Any = None
    ) -> Any:
        instance = cls()
        instance.fetch_mode = fetch_mode
        return instance

    assert "fetch_mode" not in inspect.signature(_from_db_hook(legacy).__func__).parameters
    wrapped = _from_db_hook(current).__func__
    assert wrapped(PlainLead, "default", [], [], fetch_mode="peers").fetch_mode == "peers"
