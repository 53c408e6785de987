"""Health facts shared by the JSON API and ``ai_status``: the task queue and its
workers (whichever backend: RQ, Celery, django.tasks), job counts, stuck jobs, and
whether the providers answer."""

from __future__ import annotations

import contextlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from datetime import datetime, timedelta
from typing import Any

from django.db import models
from django.db.models import Count, Q
from django.utils import timezone

from ..conf import get_setting, provider_settings
from ..dispatch import backend
from ..fields import ai_fields_of
from ..jobs import stuck
from ..models import FINISHED_STATUSES, AIJob, Phase, Status
from ..shared_state import store

# Seconds a provider's reachability probe may take, whatever its TIMEOUT says. The
# probes run side by side, so a diagnostics answer waits about this long at most.
PROBE_TIMEOUT = 3.0
# What the SDK's own timeout may overrun by before a probe counts as timed out.
PROBE_GRACE = 1.0
# Seconds the last probes' report is served to everyone (docs/api.md#get-diagnostics-diagnostics).
PROBE_CACHE_SECONDS = 30
PROBE_CACHE_KEY = "django_ai_fields:provider_health"


def queue_health() -> dict[str, Any]:
    """The task queue as its backend sees it: ``backend``, ``name``, ``workers`` (None
    when the backend keeps no record of them), ``waiting`` wake-ups (None: cannot
    tell; RQ adds ``depth``, ``scheduled``, ``started``, ``failed``), the shared
    state's ``shared_state`` scope, and the oldest job waiting for a worker
    (``oldest_waiting_job``). ``ok`` is False when the queue cannot be reached."""
    try:
        report = {"ok": True, **backend.queue_health()}
    except Exception as exc:  # the broker unreachable or misconfigured
        report = {
            "ok": False,
            "backend": get_setting("TASK_BACKEND"),
            "name": get_setting("QUEUE"),
            "error": f"{type(exc).__name__}: {exc}",
        }
    report["shared_state"] = _shared_state_scope()
    with contextlib.suppress(Exception):  # the database is down: reported elsewhere
        report["oldest_waiting_job"] = oldest_waiting_job()
    return report


def oldest_waiting_job(now: datetime | None = None) -> dict[str, Any] | None:
    """The queued job waiting longest for a worker (its id, since when, for how long)."""
    waiting = AIJob.objects.filter(status=Status.QUEUED, enqueued_at__isnull=False).exclude(
        phase=Phase.BATCH
    )
    job = waiting.order_by("enqueued_at").only("pk", "enqueued_at").first()
    if job is None or job.enqueued_at is None:
        return None
    seconds = ((now or timezone.now()) - job.enqueued_at).total_seconds()
    return {"id": job.pk, "since": job.enqueued_at.isoformat(), "seconds": round(seconds, 1)}


# What is unreachable when a backend's queue cannot be read.
UNREACHABLE = {"rq": "Redis", "celery": "Celery's broker", "django": "the task backend"}


def queue_problems(queue: dict[str, Any]) -> list[str]:
    """Why the queue is unhealthy: unreachable, or no worker where the backend can
    tell (RQ, Celery); where it cannot (django.tasks), a wake-up due longer than
    PENDING_GRACE ago and not taken says no worker is taking them."""
    if not queue["ok"]:
        return [f"{UNREACHABLE[queue['backend']]} unreachable ({queue['error']})"]
    if queue.get("workers") is not None:
        return [] if queue["workers"] else [f"no worker listens on queue {queue['name']!r}"]
    due = queue.get("oldest_wakeup_at")
    if due is not None:
        seconds = (timezone.now() - datetime.fromisoformat(due)).total_seconds()
        if seconds > float(get_setting("PENDING_GRACE")):
            return [f"no worker took a task for {seconds:.0f} s"]
    return []


def _shared_state_scope() -> str:
    try:
        return f"{type(store()).__name__} ({store().scope})"
    except Exception as exc:
        return f"unavailable: {exc}"


def status_counts(
    jobs: models.QuerySet[AIJob], finished_since: datetime | None = None
) -> dict[str, int]:
    """Jobs per status (every status present, zeros included). With ``finished_since``,
    finished jobs count only if they last changed since then: two ranges of the
    (status, updated_at) index, each counted from the index alone, instead of a count
    of every job ever run."""
    counts = dict.fromkeys(Status.values, 0)
    selections = [jobs]
    if finished_since is not None:
        open_statuses = [status for status in Status.values if status not in FINISHED_STATUSES]
        selections = [
            jobs.filter(status__in=open_statuses),
            jobs.filter(status__in=FINISHED_STATUSES, updated_at__gte=finished_since),
        ]
    for selection in selections:
        for row in selection.order_by().values("status").annotate(n=Count("*")):
            counts[row["status"]] = row["n"]
    return counts


def stuck_filter(now: datetime | None = None) -> Q:
    """Running past JOB_TIMEOUT (worker lost), pending past PENDING_GRACE (never
    enqueued), or pending or queued past STUCK_AFTER (no worker takes it: jobs/stuck.py)."""
    now = now or timezone.now()
    running_deadline = now - timedelta(seconds=get_setting("JOB_TIMEOUT"))
    pending_deadline = now - timedelta(seconds=get_setting("PENDING_GRACE"))
    return (
        Q(status=Status.RUNNING, started_at__lt=running_deadline)
        | Q(status=Status.PENDING, updated_at__lt=pending_deadline)
        | stuck.stuck_filter(now)
    )


def stuck_jobs(jobs: models.QuerySet[AIJob], now: datetime | None = None) -> models.QuerySet[AIJob]:
    return jobs.filter(stuck_filter(now)).order_by("pk")


# -- providers --------------------------------------------------------------------


def configured_providers() -> list[str]:
    """The default provider, those in PROVIDERS, and those fields name."""
    from django.apps import apps

    names = [get_setting("DEFAULT_PROVIDER"), *get_setting("PROVIDERS")]
    for model in apps.get_models():
        names += [f.ai.provider for f in ai_fields_of(model) if f.ai.provider]
    return list(dict.fromkeys(str(n) for n in names if n))


def recent_provider_health(probe: bool) -> dict[str, Any] | None:
    """The last probes (``{"checked_at": ..., "providers": [...]}``) when younger
    than PROBE_CACHE_SECONDS; else new ones when ``probe``, else None."""
    report = _cached_report()
    if report is None and probe:
        report = probe_all()
    return report


def provider_health() -> list[dict[str, Any]]:
    """New probes of every configured provider (``probe_all``)."""
    return probe_all()["providers"]


def probe_all() -> dict[str, Any]:
    """Probe every configured provider, all at once, and remember the report for
    PROBE_CACHE_SECONDS. A probe that has not answered after PROBE_TIMEOUT (and
    PROBE_GRACE) is reported as timed out; its thread ends with its SDK timeout."""
    names = configured_providers()
    _import_providers(names)
    pool = ThreadPoolExecutor(max_workers=max(len(names), 1), thread_name_prefix="ai-probe")
    futures = [pool.submit(probe_provider, name) for name in names]
    wait_for(futures, timeout=PROBE_TIMEOUT + PROBE_GRACE)
    pool.shutdown(wait=False, cancel_futures=True)
    report = {
        "checked_at": timezone.now().isoformat(),
        "providers": [
            future.result() if future.done() and not future.cancelled() else _timed_out(name)
            for name, future in zip(names, futures, strict=True)
        ],
    }
    _cache_report(report)
    return report


def probe_provider(name: str) -> dict[str, Any]:
    """Ask the provider for its model list (a cheap authenticated GET), within
    PROBE_TIMEOUT and without retries (the SDK clients never retry)."""
    started = time.monotonic()
    try:
        checked = _probe(name)
    except Exception as exc:
        from ..providers.base import ProviderError

        if isinstance(exc, ProviderError):
            detail = f"{exc.code}: {exc.message}"
        else:
            detail = f"{type(exc).__name__}: {exc}"
        return {"name": name, "ok": False, "detail": detail}
    if not checked:
        return {"name": name, "ok": None, "detail": "No reachability check for this provider."}
    elapsed = int((time.monotonic() - started) * 1000)
    return {"name": name, "ok": True, "detail": "reachable", "latency_ms": elapsed}


def _probe(name: str) -> bool:
    """True once the provider answered; False when there is no check for it."""
    from ..providers import build_provider

    config = provider_settings(name)
    config["TIMEOUT"] = min(float(config.get("TIMEOUT") or PROBE_TIMEOUT), PROBE_TIMEOUT)
    return bool(build_provider(name, config).probe())


def _import_providers(names: list[str]) -> None:
    """Import the providers' SDKs (about 1 s for anthropic's) before the probes'
    clock starts, so that a new process's first probes do not time out on it."""
    from ..providers import provider_class

    for name in names:
        with contextlib.suppress(ImportError, ValueError):  # the probe reports it
            provider_class(name)


def _timed_out(name: str) -> dict[str, Any]:
    detail = f"timeout: no answer within {PROBE_TIMEOUT:g} s."
    return {"name": name, "ok": False, "detail": detail}


def _cached_report() -> dict[str, Any] | None:
    try:
        stored = store().get(PROBE_CACHE_KEY)
    except Exception:  # the shared state is down: no cached report
        return None
    return json.loads(stored) if stored else None


def _cache_report(report: dict[str, Any]) -> None:
    with contextlib.suppress(Exception):  # shared state down: the report is returned, not shared
        store().set(PROBE_CACHE_KEY, json.dumps(report), PROBE_CACHE_SECONDS)
