"""What AI fields cost in queries: quiet saves cost what a plain model's cost, and a
processed job makes a fixed, small number of queries. Query counts only; timings
live in benchmarks/ (docs/performance.md)."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from django.db import connection, models, transaction
from django.test.utils import CaptureQueriesContext

from django_ai_fields.fields import ai_fields_of
from django_ai_fields.intake.outbox import request_jobs
from django_ai_fields.jobs.tasks import run_job
from django_ai_fields.models import AIJob, Status
from tests.testapp.models import Article, Lead, PlainLead

ROW = {"name": "Ada", "company": "Acme", "notes": "Wants 20 seats", "ssn": "123-45-6789"}
# Sent as SQL by some backends only (Django logs BEGIN/COMMIT; savepoints appear
# inside a test's transaction): not the queries a job's work needs.
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT")
# 8 for the job's own work, plus the usage roll-up's one upsert per call
# (docs/performance.md#usage-summed-once), plus the call's usage row logged
# ``sent`` before the request leaves (settled by an UPDATE where the INSERT was):
# a worker killed mid-call leaves the call counted (docs/reliability.md#kill-soak).
MAX_QUERIES_PER_JOB = 10


def loaded(model: type[models.Model], **values: Any) -> Any:
    """A row written without signals (no job), read back as a fresh instance."""
    model.objects.bulk_create([model(**values)])
    return model.objects.latest("pk")


def save_queries(instance: models.Model) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        instance.save()
    return [query["sql"] for query in captured.captured_queries]


def same_cost_as_plain(prepare: Any, **values: Any) -> tuple[list[str], list[str]]:
    """The SQL of saving a Lead and a PlainLead loaded alike and passed to ``prepare``."""
    lead, plain = loaded(Lead, **values), loaded(PlainLead, **values)
    lead, plain = prepare(lead), prepare(plain)
    return save_queries(lead), save_queries(plain)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "prepare",
    [
        pytest.param(lambda obj: obj, id="loaded"),
        pytest.param(lambda obj: type(obj).objects.get(pk=obj.pk), id="fetched-again"),
        pytest.param(lambda obj: pickle.loads(pickle.dumps(obj)), id="unpickled"),
    ],
)
def test_a_save_that_changes_no_trigger_costs_what_a_plain_save_costs(prepare: Any) -> None:
    lead_sql, plain_sql = same_cost_as_plain(prepare, **ROW)
    assert len(lead_sql) == len(plain_sql) == 1
    assert lead_sql[0].startswith("UPDATE")
    assert not AIJob.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("score", [-1, -2, 0, 2**30])
def test_numbers_that_hash_alike_still_cost_nothing_when_unchanged(score: int) -> None:
    lead_sql, plain_sql = same_cost_as_plain(lambda obj: obj, **ROW, score=score)
    assert len(lead_sql) == len(plain_sql) == 1
    assert not AIJob.objects.exists()


@pytest.mark.django_db
def test_reading_a_deferred_trigger_then_saving_costs_what_a_plain_save_costs() -> None:
    def deferred(obj: models.Model) -> Any:
        instance = type(obj).objects.only("name").get(pk=obj.pk)
        assert instance.notes == ROW["notes"]  # one query: loads the deferred field
        return instance

    lead_sql, plain_sql = same_cost_as_plain(deferred, **ROW)
    assert len(lead_sql) == len(plain_sql) == 1
    assert not AIJob.objects.exists()


@pytest.mark.django_db
def test_a_refreshed_instance_saved_unchanged_costs_what_a_plain_save_costs() -> None:
    def refreshed(obj: models.Model) -> Any:
        type(obj).objects.filter(pk=obj.pk).update(notes="Changed elsewhere")
        obj.refresh_from_db()
        return obj

    lead_sql, plain_sql = same_cost_as_plain(refreshed, **ROW)
    assert len(lead_sql) == len(plain_sql) == 1
    assert not AIJob.objects.exists()


@pytest.mark.django_db
def test_loading_rows_makes_one_query_whatever_their_number() -> None:
    Lead.objects.bulk_create([Lead(**ROW, score=i) for i in range(50)])
    with CaptureQueriesContext(connection) as captured:
        leads = list(Lead.objects.all())
    assert len(leads) == 50
    assert len(captured) == 1


def job_queries(model: type[models.Model], rows: int) -> list[int]:
    """Queries of run_job for each AI field of the last of ``rows`` rows, the jobs
    created beforehand; transaction control left out."""
    model.objects.bulk_create(
        [Article(title=f"Tea {i}") if model is Article else Lead(**ROW) for i in range(rows)]
    )
    instance = model.objects.latest("pk")
    with transaction.atomic():
        jobs = request_jobs(instance, ai_fields_of(model), triggered_by="save")
    counts = []
    for job in jobs:
        with CaptureQueriesContext(connection) as captured:
            assert run_job(job.pk) == Status.SUCCEEDED
        statements = [q["sql"] for q in captured.captured_queries]
        counts.append(len([sql for sql in statements if not sql.startswith(TRANSACTION_CONTROL)]))
    return counts


@pytest.fixture
def per_job_counts() -> dict[str, list[int]]:
    """Queries per job for 1 and 3 AI fields, in tables of 1 and 50 rows."""
    return {
        f"{model.__name__}, {rows} rows": job_queries(model, rows)
        for model in (Article, Lead)
        for rows in (1, 50)
    }


@pytest.mark.django_db(transaction=True)
def test_queries_per_job_do_not_grow_with_fields_or_rows(
    per_job_counts: dict[str, list[int]],
) -> None:
    assert [len(counts) for counts in per_job_counts.values()] == [1, 1, 3, 3]
    assert len({n for counts in per_job_counts.values() for n in counts}) == 1, per_job_counts


@pytest.mark.django_db(transaction=True)
def test_a_job_makes_at_most_ten_queries(per_job_counts: dict[str, list[int]]) -> None:
    assert max(n for counts in per_job_counts.values() for n in counts) <= MAX_QUERIES_PER_JOB
