"""Review before write (issue 21, point 1): an answer waits as a proposal; a person
accepts it (as it is or edited, validated like an answer) or rejects it."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import connection
from django.template import Context, Template
from django.test.utils import CaptureQueriesContext

from django_ai_fields import api, signals
from django_ai_fields.jobs.tasks import run_job
from django_ai_fields.models import AIJob, Status, TenantPolicy
from django_ai_fields.values.review import NotInReview, ProposalOutdated
from tests.test_performance import MAX_QUERIES_PER_JOB, TRANSACTION_CONTROL, job_queries
from tests.testapp.models import Article, Brief, Offer
from tests.values.support import Received, jobs_of, latest, offer_answers

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def reviewer() -> User:
    return User.objects.create_user("rita", password="x", is_staff=True)


def proposed_offer(fp: Any, worker: Any, **values: Any) -> Offer:
    offer_answers(fp)
    offer = Offer.objects.create(title="Seats", notes="Wants 20 seats", **values)
    worker.drain()
    return Offer.objects.get(pk=offer.pk)


def badge(offer: Offer, field: str) -> str:
    template = Template("{% load ai_fields %}{% ai_status obj field %}")
    return template.render(Context({"obj": offer, "field": field}))


def test_an_answer_under_review_waits_as_a_proposal_and_leaves_the_row_untouched(
    fake_provider, worker
):
    offer_answers(fake_provider)
    offer = Offer.objects.create(title="Seats", notes="Wants 20 seats")
    with Received(signals.review_requested) as requested:  # run here: signals are local
        for job in AIJob.objects.filter(object_id=str(offer.pk)):
            run_job(job.pk)
    offer = Offer.objects.get(pk=offer.pk)
    job = latest(offer, "pitch")
    assert (job.status, job.output, job.definition_hash != "") == (
        Status.IN_REVIEW,
        "pitch 1",
        True,
    )
    assert (offer.pitch, offer.tier) == (None, None)
    assert sorted(call["job"].field_name for call in requested.calls) == ["pitch", "tier"]
    assert "Awaiting review" in badge(offer, "pitch")


def test_accepting_writes_the_proposal_and_records_who_and_when(fake_provider, worker, reviewer):
    offer = proposed_offer(fake_provider, worker)
    job = latest(offer, "pitch")
    with Received(signals.field_updated) as updated, Received(signals.job_completed) as completed:
        api.accept(job, user=reviewer)
    job.refresh_from_db()
    assert Offer.objects.get(pk=offer.pk).pitch == "pitch 1"
    assert (job.status, job.reviewed_by, job.triggered_by) == (Status.SUCCEEDED, "rita", "create")
    assert job.reviewed_at is not None
    assert [call["value"] for call in updated.calls] == ["pitch 1"]
    assert [call["job"].pk for call in completed.calls] == [job.pk]
    assert "Generated" in badge(offer, "pitch")


def test_an_edited_accept_is_validated_like_an_answer(fake_provider, worker, reviewer):
    offer = proposed_offer(fake_provider, worker)
    job = latest(offer, "tier")
    with pytest.raises(ValidationError, match="not one of the allowed choices"):
        api.accept(job, user=reviewer, value="platinum")
    job.refresh_from_db()
    assert (job.status, Offer.objects.get(pk=offer.pk).tier) == (Status.IN_REVIEW, None)

    api.accept(job, user=reviewer, value="Silver")  # a label is taken, as in an answer
    job.refresh_from_db()
    assert Offer.objects.get(pk=offer.pk).tier == "silver"
    assert (job.status, job.output, job.triggered_by) == (Status.SUCCEEDED, "silver", "manual")
    assert job.steps[-1]["message"] == "Accepted with an edit by rita"
    assert job.steps[-1]["proposal"] == "gold"


def test_an_edited_json_value_must_satisfy_the_schema(fake_provider, worker, reviewer):
    offer = proposed_offer(fake_provider, worker)
    api.regenerate(offer, "facts", sync=True)  # auto_regenerate=False: asked for
    job = latest(offer, "facts")
    assert (job.status, job.output) == (Status.IN_REVIEW, {"seats": 10})
    with pytest.raises(ValidationError, match="violates the schema at seats"):
        api.accept(job, value={"seats": -1})
    api.accept(job, value='{"seats": 4}')
    assert Offer.objects.get(pk=offer.pk).facts == {"seats": 4}


def test_rejecting_ends_the_job_cancelled_and_leaves_the_row(fake_provider, worker, reviewer):
    offer = proposed_offer(fake_provider, worker)
    job = latest(offer, "pitch")
    api.reject(job, user=reviewer)
    job.refresh_from_db()
    assert (job.status, job.reviewed_by, job.error) == (
        Status.CANCELLED,
        "rita",
        "The proposal was rejected.",
    )
    assert Offer.objects.get(pk=offer.pk).pitch is None
    with pytest.raises(NotInReview, match="it is cancelled"):
        api.accept(job)


def test_a_trigger_change_supersedes_a_waiting_proposal(fake_provider, worker):
    offer = proposed_offer(fake_provider, worker)
    first = latest(offer, "pitch")
    offer.notes = "Wants 30 seats"
    offer.save()
    first.refresh_from_db()
    assert first.status == Status.SUPERSEDED
    assert "waited for review" in first.error
    worker.drain()
    assert [job.status for job in jobs_of(offer, "pitch")] == [
        Status.SUPERSEDED,
        Status.IN_REVIEW,
    ]
    with pytest.raises(NotInReview, match="it is superseded"):
        api.accept(first)
    assert Offer.objects.get(pk=offer.pk).pitch is None


def test_accepting_a_proposal_whose_inputs_changed_is_refused_and_writes_nothing(
    fake_provider, worker
):
    offer = proposed_offer(fake_provider, worker)
    job = latest(offer, "pitch")
    Offer.objects.filter(pk=offer.pk).update(notes="Changed without a save")  # no signal
    with pytest.raises(ProposalOutdated, match="inputs changed since this proposal"):
        api.accept(job)
    job.refresh_from_db()
    assert job.status == Status.SUPERSEDED
    assert Offer.objects.get(pk=offer.pk).pitch is None


def test_two_reviewers_accepting_at_once_write_once(fake_provider, worker):
    offer = proposed_offer(fake_provider, worker)
    pk = latest(offer, "pitch").pk
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def review(name: str) -> None:
        job = AIJob.objects.get(pk=pk)  # each reviewer's page loaded the proposal
        start.wait()
        try:
            api.accept(job, value=f"edited by {name}")
            outcomes.append("accepted")
        except NotInReview:
            outcomes.append("refused")
        finally:
            connection.close()

    with Received(signals.field_updated) as updated:
        threads = [threading.Thread(target=review, args=(name,)) for name in ("ann", "bob")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(outcomes) == ["accepted", "refused"]
    assert len(updated.calls) == 1
    job = AIJob.objects.get(pk=pk)
    assert Offer.objects.get(pk=offer.pk).pitch == job.output == updated.calls[0]["value"]
    assert [s["message"] for s in job.steps].count("Accepted with an edit") == 1


def test_a_tenant_policy_asks_for_review_of_every_field(fake_provider, worker, settings):
    settings.AI_FIELDS = {
        **settings.AI_FIELDS,
        "TENANT_RESOLVER": "tests.testapp.tenancy.product_tenant",
    }
    TenantPolicy.objects.create(tenant="careful", require_review=True)
    careful = Brief.objects.create(shop="careful", title="Tea")
    other = Brief.objects.create(shop="bold", title="Tea")
    worker.drain()
    assert (latest(careful, "text").status, latest(other, "text").status) == (
        Status.IN_REVIEW,
        Status.SUCCEEDED,
    )
    assert Brief.objects.get(pk=careful.pk).text is None
    api.accept(latest(careful, "text"))
    assert Brief.objects.get(pk=careful.pk).text == latest(careful, "text").output


def test_a_job_under_review_makes_no_more_queries_than_one_that_writes(fake_provider, worker):
    offer_answers(fake_provider)
    offer = Offer.objects.create(title="Seats", notes="Wants 20 seats")
    job = latest(offer, "pitch")
    with CaptureQueriesContext(connection) as captured:
        assert run_job(job.pk) == Status.IN_REVIEW
    statements = [q["sql"] for q in captured.captured_queries]
    work = [sql for sql in statements if not sql.startswith(TRANSACTION_CONTROL)]
    (writing,) = job_queries(Article, 1)  # a job of a field without review, alike
    assert len(work) == writing <= MAX_QUERIES_PER_JOB, work
