"""The task backend seam: ``backend.send`` carries extra JSON keyword arguments to the
task function on every backend, the worker side names the running wake-up, and a
``TASK_BACKEND`` that cannot work fails ``manage.py check``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from django_ai_fields.dispatch import backend
from django_ai_fields.dispatch.backends import wakeups
from django_ai_fields.queues import RUN_JOB, get_queue
from tests.fresh_project import BASE_APPS, FreshProject

CONTEXT = {"database": "replica", "schema": "acme"}


def test_rq_carries_extra_keyword_arguments() -> None:
    task_id = backend.send(RUN_JOB, 7, context=CONTEXT)
    (job,) = get_queue().get_jobs()
    assert (job.id, job.func_name, list(job.args)) == (task_id, RUN_JOB, [7])
    assert job.kwargs == {"context": CONTEXT}


def test_celery_carries_extra_keyword_arguments_and_the_wakeup(settings: Any) -> None:
    celery = pytest.importorskip("celery")
    from tests.backends import sending

    sending.app = celery.Celery("memory-sender", broker="memory://", set_as_current=False)
    settings.AI_FIELDS = {
        **settings.AI_FIELDS,
        "TASK_BACKEND": "celery",
        "CELERY_APP": "tests.backends.sending.app",
        "CELERY_QUEUE": "ai-memory",
    }
    try:
        task_id = backend.send(RUN_JOB, 7, delay=5, timeout=60, context=CONTEXT)
        with sending.app.connection_for_read() as connection:
            message = connection.SimpleQueue("ai-memory").get(timeout=1)
        args, kwargs, _options = message.decode()
        assert (message.headers["task"], message.headers["id"]) == (RUN_JOB, task_id)
        assert args == [7]
        assert kwargs["context"] == CONTEXT
        facts = kwargs[wakeups.WAKEUP]
        assert (facts["id"], facts["timeout"]) == (task_id, 60)
        assert message.headers["eta"]  # countdown: the broker holds it 5 s
        assert backend.waiting_tasks([task_id, "gone"]) == {task_id}
    finally:
        sending.app.close()
        sending.app = None


@pytest.mark.django_db
def test_django_tasks_carry_extra_keyword_arguments_and_the_wakeup(settings: Any) -> None:
    pytest.importorskip("django_tasks_db")
    from django_tasks_db.models import DBTaskResult

    settings.AI_FIELDS = {**settings.AI_FIELDS, "TASK_BACKEND": "django"}
    task_id = backend.send(RUN_JOB, 7, delay=5, at_front=True, context=CONTEXT)
    row = DBTaskResult.objects.get()
    assert row.task_path == "django_ai_fields.jobs.django_tasks.wake"
    path, args, kwargs, facts = row.args_kwargs["args"]
    assert (path, args, kwargs) == (RUN_JOB, [7], {"context": CONTEXT})
    assert facts["id"] == task_id
    assert row.priority == 10  # live work first
    assert 4 < (row.run_after - row.enqueued_at).total_seconds() <= 6


def test_the_worker_side_passes_the_arguments_and_names_the_running_wakeup() -> None:
    seen: dict[str, Any] = {}

    def entry_point(job_id: int, **kwargs: Any) -> str:
        seen.update(job_id=job_id, kwargs=kwargs, running=backend.current_task_id())
        return "done"

    settings_kwargs = {"context": CONTEXT, wakeups.WAKEUP: {"id": "wake-1", "timeout": 5}}
    assert wakeups.run(entry_point, [7], settings_kwargs) == "done"
    assert seen == {"job_id": 7, "kwargs": {"context": CONTEXT}, "running": None}
    assert wakeups.running_task_id() is None


def test_a_wakeup_run_before_its_time_is_held_until_then() -> None:
    import time

    due = time.time() + 0.3
    ran: list[float] = []
    wakeups.run(lambda: ran.append(time.time()), [], {wakeups.WAKEUP: {"id": "w", "due": due}})
    assert ran[0] >= due


# -- system checks, through manage.py check in a fresh project ---------------------------

DATABASE_TASKS = "TASKS = {'default': {'BACKEND': 'django_tasks_db.DatabaseBackend'}}\n"


def check_ids(project: FreshProject) -> set[str]:
    output = project.check()
    found = set(re.findall(r"\(django_ai_fields\.([EW]\d{3})\)", output))
    return found or ({"ok"} if "no issues" in output else {output})


def test_an_unknown_task_backend_is_e021(tmp_path: Path) -> None:
    assert check_ids(FreshProject(tmp_path, {"TASK_BACKEND": "sqs"})) == {"E021"}


def test_celery_without_an_app_is_e022(tmp_path: Path) -> None:
    pytest.importorskip("celery")
    assert check_ids(FreshProject(tmp_path, {"TASK_BACKEND": "celery"})) == {"E022"}


def test_celery_with_the_projects_app_passes(tmp_path: Path) -> None:
    """The app Celery's Django guide creates (here in the settings module) is found."""
    pytest.importorskip("celery")
    project = FreshProject(tmp_path, {"TASK_BACKEND": "celery"})
    project.settings_code = "from celery import Celery\napp = Celery('fresh', broker='memory://')\n"
    assert check_ids(project) == {"ok"}


def test_django_tasks_with_no_redis_at_all_passes(tmp_path: Path) -> None:
    """django-tasks-db and the local-memory cache: no django_rq, no RQ_QUEUES."""
    pytest.importorskip("django_tasks_db")
    apps = [app for app in BASE_APPS if app != "django_rq"] + ["django_tasks_db"]
    project = FreshProject(tmp_path, {"TASK_BACKEND": "django"}, installed_apps=apps)
    project.settings_code = DATABASE_TASKS + "del RQ_QUEUES\n"
    assert check_ids(project) == {"ok"}


def test_django_tasks_with_an_unknown_queue_is_e023(tmp_path: Path) -> None:
    pytest.importorskip("django_tasks_db")
    settings = {"TASK_BACKEND": "django", "DJANGO_TASKS_QUEUE": "ai"}
    project = FreshProject(tmp_path, settings, installed_apps=[*BASE_APPS, "django_tasks_db"])
    project.settings_code = DATABASE_TASKS
    assert check_ids(project) == {"E023"}


def test_rq_without_django_rq_is_still_e011(tmp_path: Path) -> None:
    apps = [app for app in BASE_APPS if app != "django_rq"]
    assert check_ids(FreshProject(tmp_path, installed_apps=apps)) == {"E011"}
