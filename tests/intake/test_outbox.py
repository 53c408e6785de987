"""The outbox: jobs written in the save's transaction, enqueued on commit, never lost."""

from __future__ import annotations

import io
import json
import re
import socket
import threading
from collections.abc import Iterator

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.test import override_settings
from redis.backoff import NoBackoff
from redis.retry import Retry

from django_ai_fields.models import AIJob, Status
from django_ai_fields.queues import get_queue
from tests.fake_provider import RecordedRequest
from tests.testapp.models import Lead

pytestmark = pytest.mark.django_db(transaction=True)


def unreachable_redis(port: int) -> dict[str, dict[str, object]]:
    """RQ_QUEUES for a Redis that is down; no client retries, so failing takes no time."""
    kwargs = {"retry": Retry(NoBackoff(), 0)}
    return {"default": {"HOST": "127.0.0.1", "PORT": port, "REDIS_CLIENT_KWARGS": kwargs}}


REDIS_DOWN = unreachable_redis(1)  # nothing listens on port 1
AI_FIELD_NAMES = {"summary", "heat", "profile"}


def field_of(request: RecordedRequest) -> str:
    """Which AI field a recorded provider request is for (named in the system message)."""
    system = request.body["messages"][0]["content"]
    return re.search(r'field "([^"]+)"', system).group(1)


def echo_revision(request: RecordedRequest) -> str:
    """Answer with the ``rev-N`` marker the prompt carries, shaped for each field."""
    marker = re.search(r"rev-\d+", request.body["messages"][1]["content"]).group(0)
    field = field_of(request)
    if field == "heat":
        return "hot" if marker == "rev-9" else "cold"
    if field == "profile":
        return json.dumps({"industry": marker, "employees": 1})
    return f"summary of {marker}"


def statuses(lead: Lead) -> dict[str, str]:
    return dict(AIJob.objects.filter(object_id=str(lead.pk)).values_list("field_name", "status"))


def test_rolled_back_save_leaves_no_job_and_enqueues_nothing():
    with pytest.raises(RuntimeError), transaction.atomic():
        Lead.objects.create(name="Ada", company="Acme", notes="Wants 20 seats")
        assert AIJob.objects.count() == 3  # written inside the save's transaction
        raise RuntimeError("roll back")
    assert AIJob.objects.count() == 0
    assert len(get_queue()) == 0


def test_enqueue_happens_only_on_commit():
    with transaction.atomic():
        lead = Lead.objects.create(name="Ada", company="Acme", notes="Wants 20 seats")
        assert len(get_queue()) == 0
        assert set(statuses(lead).values()) == {Status.PENDING}
    queue = get_queue()
    jobs = list(AIJob.objects.filter(object_id=str(lead.pk)))
    assert {job.status for job in jobs} == {Status.QUEUED}
    # One drain runs the save's three jobs: each names it.
    assert queue.job_ids == [jobs[0].rq_job_id]
    assert {job.rq_job_id for job in jobs} == {jobs[0].rq_job_id}
    assert all(job.enqueued_at is not None for job in jobs)


def test_redis_down_at_save_keeps_job_pending_until_requeue(fake_provider, worker):
    fake_provider.responder = echo_revision
    with override_settings(RQ_QUEUES=REDIS_DOWN):
        lead = Lead.objects.create(name="Ada", company="Acme", notes="rev-1")
        with pytest.raises(SystemExit):
            call_command("ai_requeue", stdout=io.StringIO(), stderr=io.StringIO())
    assert statuses(lead) == dict.fromkeys(AI_FIELD_NAMES, Status.PENDING)
    assert set(AIJob.objects.values_list("rq_job_id", flat=True)) == {""}
    assert len(get_queue()) == 0

    out = io.StringIO()
    call_command("ai_requeue", stdout=out)
    assert "3 pending job(s) enqueued" in out.getvalue()
    assert statuses(lead) == dict.fromkeys(AI_FIELD_NAMES, Status.QUEUED)
    worker.drain()

    lead.refresh_from_db()
    assert statuses(lead) == dict.fromkeys(AI_FIELD_NAMES, Status.SUCCEEDED)
    assert lead.summary == "summary of rev-1"
    assert fake_provider.calls == 3


@pytest.fixture
def broken_redis() -> Iterator[tuple[int, list[int]]]:
    """A port that accepts connections and closes them at once, counting them."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[int] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            accepted.append(1)
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1], accepted
    server.shutdown(socket.SHUT_RDWR)
    server.close()


def test_a_save_with_redis_down_tries_redis_once_not_once_per_field(broken_redis):
    port, accepted = broken_redis
    with override_settings(RQ_QUEUES=unreachable_redis(port)):
        lead = Lead.objects.create(name="Ada", company="Acme", notes="n")
    assert statuses(lead) == dict.fromkeys(AI_FIELD_NAMES, Status.PENDING)
    assert len(accepted) == 1


def test_ten_saves_coalesce_into_one_call_per_field_with_the_last_value(fake_provider, worker):
    fake_provider.responder = echo_revision
    lead = Lead.objects.create(name="Ada", company="Acme", notes="rev-0")
    for revision in range(1, 10):
        lead.notes = f"rev-{revision}"
        lead.save()
    assert AIJob.objects.count() == 3
    assert len(get_queue()) == 1  # one drain for the three jobs, not one RQ job per save

    worker.drain()

    calls_per_field = [field_of(request) for request in fake_provider.provider_requests]
    assert sorted(calls_per_field) == sorted(AI_FIELD_NAMES)
    lead.refresh_from_db()
    assert lead.summary == "summary of rev-9"
    assert lead.heat == "hot"
    assert lead.profile == {"industry": "rev-9", "employees": 1}
    assert statuses(lead) == dict.fromkeys(AI_FIELD_NAMES, Status.SUCCEEDED)


def test_a_save_after_the_job_ran_starts_a_new_job(fake_provider, worker):
    lead = Lead.objects.create(name="Ada", company="Acme", notes="first")
    worker.drain()
    lead.notes = "second"
    lead.save()
    jobs = AIJob.objects.filter(object_id=str(lead.pk), field_name="summary")
    assert sorted(jobs.values_list("status", flat=True)) == [Status.QUEUED, Status.SUCCEEDED]


def test_a_save_that_changes_no_trigger_makes_no_job_and_no_query(
    django_assert_num_queries,
):
    lead = Lead.objects.create(name="Ada", company="Acme", notes="n")
    with django_assert_num_queries(1):  # the UPDATE itself
        lead.ssn = "123-45-6789"  # excluded: never a trigger
        lead.save(update_fields=["ssn"])
    assert AIJob.objects.count() == 3


@pytest.mark.skipif(
    not connection.features.supports_partial_indexes,
    reason="MariaDB and MySQL have no partial unique constraints "
    "(docs/deployment.md#mariadb-and-mysql): the app's coalescing alone applies there",
)
def test_one_open_job_per_row_and_field_is_enforced_by_the_database():
    lead = Lead.objects.create(name="Ada", company="Acme", notes="n")
    job = AIJob.objects.get(object_id=str(lead.pk), field_name="heat")
    duplicate = {
        "content_type_id": job.content_type_id,
        "object_id": job.object_id,
        "field_name": "heat",
    }
    with pytest.raises(IntegrityError), transaction.atomic():
        AIJob.objects.create(**duplicate, status=Status.PENDING)
    # Finished jobs do not count: history may hold any number of them.
    AIJob.objects.create(**duplicate, status=Status.SUCCEEDED)
    AIJob.objects.create(**duplicate, status=Status.FAILED)
    assert AIJob.objects.filter(field_name="heat").count() == 3
