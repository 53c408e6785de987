"""The flat layout's import paths keep working for one release (_deprecated.py).

relayout: skip-file (these tests name the old paths on purpose)
"""

from __future__ import annotations

import importlib
import warnings

import pytest
from rq.job import Job
from rq.utils import import_attribute

from django_ai_fields.jobs import tasks
from django_ai_fields.models import AIJob, Status
from django_ai_fields.queues import get_queue
from tests.testapp.models import Lead

pytestmark = pytest.mark.django_db(transaction=True)

# (old path, new path) of every moved name that docs/ or example_project/ imported.
DOCUMENTED = [
    ("django_ai_fields.outbox.request_jobs", "django_ai_fields.intake.outbox.request_jobs"),
    ("django_ai_fields.outbox.get_queue", "django_ai_fields.queues.get_queue"),
    ("django_ai_fields.outputs.InvalidOutput", "django_ai_fields.declare.outputs.InvalidOutput"),
    ("django_ai_fields.prompts.fence", "django_ai_fields.declare.prompts.fence"),
    (
        "django_ai_fields.moderation.ModerationRefused",
        "django_ai_fields.calling.moderation.ModerationRefused",
    ),
    (
        "django_ai_fields.admin_mixins.AIFieldsAdminMixin",
        "django_ai_fields.admin.mixins.AIFieldsAdminMixin",
    ),
    ("django_ai_fields.job_actions.retry", "django_ai_fields.jobs.actions.retry"),
    ("django_ai_fields.breaker.reset", "django_ai_fields.calling.breaker.reset"),
    ("django_ai_fields.engine.finish", "django_ai_fields.jobs.lifecycle.finish"),
    (
        "django_ai_fields.providers.resolve_credentials",
        "django_ai_fields.tenants.credentials.resolve_credentials",
    ),
]

OLD_TASKS = {
    "django_ai_fields.engine.run_job": tasks.run_job,
    "django_ai_fields.chunks.run_chunk": tasks.run_chunk,
    "django_ai_fields.sweep.periodic_sweep": tasks.periodic_sweep,
    "django_ai_fields.batches.periodic_poll": tasks.periodic_poll,
}


def attribute(path: str) -> object:
    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize(("old", "new"), DOCUMENTED)
def test_an_old_import_path_still_works_with_a_deprecation_warning(old, new):
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {new};") as caught:
        value = attribute(old)
    assert value is attribute(new)
    assert caught[0].filename == __file__  # the warning points at the importing line


def test_from_import_of_an_old_module_warns_at_the_import():
    with pytest.warns(DeprecationWarning, match="django_ai_fields.intake.outbox.request_jobs"):
        from django_ai_fields.outbox import request_jobs
    from django_ai_fields.intake.outbox import request_jobs as moved

    assert request_jobs is moved


def test_an_unknown_name_of_an_old_module_is_an_attribute_error():
    with pytest.raises(ImportError, match="no_such_name"):
        from django_ai_fields.engine import no_such_name  # noqa: F401


@pytest.mark.parametrize("path", sorted(OLD_TASKS))
def test_rq_resolves_the_old_task_paths_silently(path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert import_attribute(path) is OLD_TASKS[path]


def enqueue_old(path: str, *args: object) -> Job:
    """What an earlier release left in Redis: an RQ job naming the old path."""
    return get_queue().enqueue(path, *args)


def test_jobs_enqueued_by_the_old_paths_get_done(fake_provider, worker):
    fake_provider.responder = lambda request: "warm"  # only the heat jobs run
    first = Lead.objects.create(name="Ada", company="Acme", notes="n")
    second = Lead.objects.create(name="Bob", company="Acme", notes="n")
    get_queue().empty()  # as if queued by the old release, below
    jobs = {
        lead.pk: AIJob.objects.get(object_id=str(lead.pk), field_name="heat")
        for lead in (first, second)
    }
    single = enqueue_old("django_ai_fields.engine.run_job", jobs[first.pk].pk)
    chunk = enqueue_old("django_ai_fields.chunks.run_chunk", [jobs[second.pk].pk])
    # The old release wrote each job's own RQ job id (no drain's).
    AIJob.objects.filter(pk=jobs[first.pk].pk).update(rq_job_id=single.id)
    AIJob.objects.filter(pk=jobs[second.pk].pk).update(rq_job_id=chunk.id)
    AIJob.objects.exclude(pk__in=[job.pk for job in jobs.values()]).update(status=Status.CANCELLED)

    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        worker.drain()

    assert single.func_name == "django_ai_fields.engine.run_job"
    connection = get_queue().connection
    assert Job.fetch(single.id, connection=connection).return_value() == Status.SUCCEEDED
    assert Job.fetch(chunk.id, connection=connection).return_value() == {Status.SUCCEEDED: 1}
    for lead in (first, second):
        lead.refresh_from_db()
        assert lead.heat == "warm"


def test_the_old_periodic_job_paths_still_run(worker):
    sweep = enqueue_old("django_ai_fields.sweep.periodic_sweep")
    poll = enqueue_old("django_ai_fields.batches.periodic_poll")

    worker.drain()

    connection = get_queue().connection
    assert "pending job(s) enqueued" in Job.fetch(sweep.id, connection=connection).return_value()
    assert "provider batch(es) still running" in Job.fetch(
        poll.id, connection=connection
    ).return_value()
