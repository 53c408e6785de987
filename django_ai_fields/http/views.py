"""The JSON API: plain Django views, session auth, scoped to the caller's tenant.

Reads need the *view* permission (or *change*), actions the *change* permission
of ``AIJob``; analytics need *view* on ``AIUsage``. See docs/api.md.
"""

from __future__ import annotations

import datetime
from typing import Any

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import models
from django.http import Http404, HttpRequest, JsonResponse
from django.utils import timezone

from .. import row_keys
from ..calling import breaker
from ..conf import get_setting
from ..dispatch import handover
from ..fields import get_ai_field
from ..jobs import actions as job_actions
from ..jobs.sweep import JOBS_PER_SWEEP, sweep
from ..models import AIJob, AIUsage, ErrorCode, Status
from ..observability import analytics, health
from ..status import job_for
from ..templatetags.ai_fields import render_badge
from ..tenants import moved_away, resolve_tenant
from ..tenants.permissions import has_model_perm, is_operator, scope, tenant_for_user
from .jsonapi import (
    ApiError,
    date_param,
    day_range,
    endpoint,
    job_to_dict,
    json_body,
    json_response,
    list_param,
    paginate,
)

BULK_LIMIT = 1000
STUCK_LISTED = 50


def scoped_jobs(request: HttpRequest) -> models.QuerySet[AIJob]:
    return scope(AIJob.objects.select_related("content_type"), request.user)


def get_job(request: HttpRequest, job_id: int) -> AIJob:
    job = scoped_jobs(request).filter(pk=job_id).first()
    if job is None:
        raise Http404(f"No job {job_id}.")
    return job


# -- jobs --------------------------------------------------------------------------


@endpoint()
def job_list(request: HttpRequest) -> JsonResponse:
    """Jobs, newest first; filters: status, field, model, tenant, error_code, target, object_id."""
    jobs = scoped_jobs(request).defer("prompt", "output", "payload").order_by("-pk")
    statuses = list_param(request, "status", Status.values)
    if statuses:
        jobs = jobs.filter(status__in=statuses)
    codes = list_param(request, "error_code", ErrorCode.values)
    if codes:
        jobs = jobs.filter(error_code__in=codes)
    for param, column in (("field", "field_name"), ("model", "model"), ("tenant", "tenant")):
        if param in request.GET:
            jobs = jobs.filter(**{column: request.GET[param]})
    if request.GET.get("target"):
        app_label, _dot, model_name = request.GET["target"].lower().partition(".")
        jobs = jobs.filter(content_type__app_label=app_label, content_type__model=model_name)
    if request.GET.get("object_id"):
        jobs = jobs.filter(object_id=request.GET["object_id"])
    page, meta = paginate(request, jobs)
    return json_response({**meta, "results": [job_to_dict(job) for job in page]})


@endpoint()
def job_detail(request: HttpRequest, job_id: int) -> JsonResponse:
    """One job, with what it read from its row (prompt, answer) unless the row went to
    another tenant since: that is the row's current tenant's to see."""
    job = get_job(request, job_id)
    hidden = moved_away(job, tenant_for_user(request.user))
    return json_response(job_to_dict(job, detail=True, row_content=not hidden))


def _single_action(request: HttpRequest, job_id: int, action: str) -> JsonResponse:
    job = get_job(request, job_id)
    tenant = tenant_for_user(request.user)
    reason = job_actions.retry(job, tenant) if action == "retry" else job_actions.cancel(job)
    if reason == job_actions.ROW_MOVED:
        raise ApiError(403, reason, "The job's row belongs to another tenant now.")
    if reason == job_actions.INVALID_STATE:
        raise ApiError(400, reason, f"Cannot {action} a job that is {job.status}.")
    if reason == job_actions.OPEN_JOB_EXISTS:
        raise ApiError(400, reason, "Another job for this row and field is already open.")
    if reason == job_actions.RETRY_LIMITED:
        raise ApiError(
            429,
            reason,
            "This job was retried too often: wait RETRY_COOLDOWN seconds between retries, "
            "at most MAX_RETRIES_PER_HOUR an hour.",
            **{"Retry-After": str(get_setting("RETRY_COOLDOWN") or 60)},
        )
    job.refresh_from_db()
    return json_response(job_to_dict(job))


@endpoint(methods=("POST",), action="change")
def job_retry(request: HttpRequest, job_id: int) -> JsonResponse:
    return _single_action(request, job_id, "retry")


@endpoint(methods=("POST",), action="change")
def job_cancel(request: HttpRequest, job_id: int) -> JsonResponse:
    return _single_action(request, job_id, "cancel")


def _ids(body: dict[str, Any]) -> list[int]:
    raw = body.get("ids")
    if not isinstance(raw, list) or not raw or len(raw) > BULK_LIMIT:
        raise ApiError(400, "invalid_body", f"Send ids: a list of 1 to {BULK_LIMIT} job ids.")
    try:
        return [int(value) for value in raw]
    except (TypeError, ValueError):
        raise ApiError(400, "invalid_body", "ids must be integers.") from None


@endpoint(methods=("POST",), action="change")
def job_bulk_retry(request: HttpRequest) -> JsonResponse:
    """POST {"ids": [...]}: retry each job; ids not visible to the caller are not_found."""
    ids = _ids(json_body(request))
    jobs = scoped_jobs(request).filter(pk__in=ids)
    result = job_actions.apply("retry", jobs, tenant_for_user(request.user))
    for missing in set(ids) - {job.pk for job in jobs}:
        result.skipped[missing] = "not_found"
    skipped = [{"id": pk, "reason": reason} for pk, reason in sorted(result.skipped.items())]
    return json_response({"retried": sorted(result.done), "skipped": skipped})


@endpoint(methods=("POST",), action="change")
def queue_pending(request: HttpRequest) -> JsonResponse:
    """Enqueue pending jobs now (all tenants' via the sweep, or the caller's tenant's)."""
    tenant = tenant_for_user(request.user)
    if tenant is None:
        report = sweep(all_pending=True)
        return json_response(vars(report))
    pending = AIJob.objects.filter(status=Status.PENDING, tenant=tenant).order_by("pk")
    job_ids = list(pending.values_list("pk", flat=True)[:JOBS_PER_SWEEP])
    enqueued = handover.to_drain(job_ids)
    return json_response({"enqueued": enqueued, "unreachable": len(job_ids) - enqueued})


# -- one row's status (the badge) --------------------------------------------------------


@endpoint(action=None)
def row_status(request: HttpRequest, model: str, pk: str, field: str) -> JsonResponse:
    """The latest job of a row's AI field, with the badge HTML for live refresh.

    Allowed with *view* on AIJob or *view* on the row's model.
    """
    try:
        model_class = apps.get_model(model)
        get_ai_field(model_class, field)
    except (LookupError, ValueError, FieldDoesNotExist):
        raise Http404(f"No AI field {model}.{field}.") from None
    if not (
        has_model_perm(request.user, "view", AIJob)
        or has_model_perm(request.user, "view", model_class)
    ):
        raise ApiError(403, "permission_denied", "You may not see this row.")
    try:
        obj = model_class._default_manager.filter(row_keys.pk_filter(model_class, pk)).first()
    except (ValueError, ValidationError):
        obj = None
    tenant = tenant_for_user(request.user)
    if obj is None or (tenant is not None and resolve_tenant(obj) != tenant):
        raise Http404(f"No {model} {pk}.")
    job = job_for(obj, field)
    return json_response(
        {
            "model": model_class._meta.label_lower,
            "pk": row_keys.key_of(obj),
            "field": field,
            "status": job.status if job else None,
            "job": job_to_dict(job) if job else None,
            "html": render_badge(obj, field),
        }
    )


# -- operations ---------------------------------------------------------------------------


@endpoint()
def worker_health(request: HttpRequest) -> JsonResponse:
    """The task backend's workers and waiting wake-ups (no tenant data)."""
    queue = health.queue_health()
    healthy = not health.queue_problems(queue)
    return json_response({"healthy": healthy, "queue": queue})


@endpoint()
def diagnostics(request: HttpRequest) -> JsonResponse:
    """Stuck jobs (in the caller's tenant) and provider reachability (?providers=0 skips):
    the last probes, or new ones when they are stale and the caller is an operator."""
    stuck = health.stuck_jobs(scoped_jobs(request)).defer("prompt", "output", "payload")
    probes = None
    if request.GET.get("providers") != "0":
        probes = health.recent_provider_health(probe=is_operator(request.user))
    data: dict[str, Any] = {
        "stuck_jobs": {
            "count": stuck.count(),
            "jobs": [job_to_dict(job) for job in stuck[:STUCK_LISTED]],
        },
        "providers": probes["providers"] if probes else None,
        "providers_checked_at": probes["checked_at"] if probes else None,
        # Circuit breakers shared by the workers (docs/reliability.md).
        "circuits": breaker.states(),
    }
    return json_response(data)


# -- analytics ------------------------------------------------------------------------------


def window(request: HttpRequest) -> tuple[dict[str, Any], dict[str, Any]]:
    """The since..until days (default: the last 30) as a filter on created_at, and as text."""
    until = date_param(request, "until", timezone.localdate())
    since = date_param(request, "since", until - datetime.timedelta(days=29))
    start, end = day_range(since, until)
    return (
        {"created_at__gte": start, "created_at__lt": end},
        {"since": since.isoformat(), "until": until.isoformat()},
    )


def scoped_usage(request: HttpRequest, period: dict[str, Any]) -> models.QuerySet[AIUsage]:
    usage = scope(AIUsage.objects.all(), request.user).filter(**period)
    for param in ("tenant", "provider", "model"):
        if param in request.GET:
            usage = usage.filter(**{param: request.GET[param]})
    return usage


@endpoint(model=AIUsage)
def usage_analytics(request: HttpRequest) -> JsonResponse:
    """Calls, tokens and cost grouped by ?group_by=day,tenant,model (and/or provider)."""
    group_by = list_param(request, "group_by", analytics.GROUPS) or ["day", "tenant", "model"]
    period, text = window(request)
    usage = scoped_usage(request, period)
    return json_response(
        {
            **text,
            "group_by": group_by,
            "rows": analytics.usage_by(usage, group_by),
            "totals": analytics.totals(usage),
        }
    )


@endpoint(model=AIUsage)
def performance(request: HttpRequest) -> JsonResponse:
    """Latency percentiles per provider and model, call error rates, job failure rates."""
    period, text = window(request)
    jobs = scope(AIJob.objects.all(), request.user).filter(**period)
    if "tenant" in request.GET:
        jobs = jobs.filter(tenant=request.GET["tenant"])
    usage = scoped_usage(request, period)
    return json_response(
        {
            **text,
            "latency": analytics.latency(usage),
            "calls": analytics.error_rates(usage),
            "jobs": analytics.job_failures(jobs),
        }
    )


__all__ = [
    "diagnostics",
    "job_bulk_retry",
    "job_cancel",
    "job_detail",
    "job_list",
    "job_retry",
    "performance",
    "queue_pending",
    "row_status",
    "usage_analytics",
    "worker_health",
]
