"""Plumbing of the JSON API: the endpoint decorator (method, session auth, CSRF,
permission, JSON errors), parameters, pagination and serialisation."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Sequence
from functools import wraps
from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import models
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from ..conf import get_setting
from ..models import AIJob, AIUsage
from ..tenants.permissions import NoTenant, has_model_perm

View = Callable[..., HttpResponse]


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **headers: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers


def error_response(status: int, code: str, message: str, **headers: str) -> JsonResponse:
    response = JsonResponse({"error": {"code": code, "message": str(message)}}, status=status)
    for name, value in headers.items():
        response[name] = value
    return response


def json_response(data: Any, status: int = 200) -> JsonResponse:
    """Decimals become strings (exact money), datetimes ISO 8601."""
    return JsonResponse(data, status=status, safe=False)


class _CsrfCheck(CsrfViewMiddleware):
    def _reject(self, request: HttpRequest, reason: str) -> str:
        return reason


def csrf_failure(request: HttpRequest) -> str | None:
    """The CSRF middleware's verdict, as a reason string (None: the request passes)."""
    check = _CsrfCheck(lambda _request: HttpResponse())
    check.process_request(request)
    return check.process_view(request, None, (), {})  # type: ignore[arg-type,return-value]


def endpoint(
    *,
    methods: Sequence[str] = ("GET",),
    action: str | None = "view",
    model: type[models.Model] = AIJob,
) -> Callable[[View], View]:
    """Wrap a view: allowed methods, a logged-in user, CSRF on POST, the model
    permission (``action`` None: the view checks itself), and JSON errors."""

    def decorate(view: View) -> View:
        @csrf_exempt  # checked below, so a failure answers in JSON
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in methods:
                return error_response(
                    405,
                    "method_not_allowed",
                    f"Use {' or '.join(methods)}.",
                    Allow=", ".join(methods),
                )
            if not request.user.is_authenticated:
                return error_response(403, "not_authenticated", "Log in first.")
            if request.method == "POST" and (reason := csrf_failure(request)):
                return error_response(403, "csrf_failed", f"CSRF check failed: {reason}")
            if action is not None and not has_model_perm(request.user, action, model):
                return error_response(403, "permission_denied", "You may not do this.")
            try:
                return view(request, *args, **kwargs)
            except ApiError as exc:
                return error_response(exc.status, exc.code, exc.message, **exc.headers)
            except NoTenant as exc:
                return error_response(403, "no_tenant", str(exc))
            except PermissionDenied:
                return error_response(403, "permission_denied", "You may not do this.")
            except Http404 as exc:
                return error_response(404, "not_found", str(exc) or "Not found.")

        return wrapper

    return decorate


# -- parameters ---------------------------------------------------------------------


def int_param(request: HttpRequest, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.GET.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "invalid_parameter", f"{name} must be an integer.") from None
    if not lo <= value <= hi:
        raise ApiError(400, "invalid_parameter", f"{name} must be between {lo} and {hi}.")
    return value


# Dates a window may use: day arithmetic on them (until + 1 day, until - 29 days)
# stays inside what ``datetime.date`` can hold.
EARLIEST_DATE = datetime.date(1900, 1, 1)
LATEST_DATE = datetime.date(9999, 12, 30)


def date_param(request: HttpRequest, name: str, default: datetime.date) -> datetime.date:
    raw = request.GET.get(name)
    if not raw:
        return default
    try:
        value = datetime.date.fromisoformat(raw)
    except ValueError:
        raise ApiError(400, "invalid_parameter", f"{name} must be a date (YYYY-MM-DD).") from None
    if not EARLIEST_DATE <= value <= LATEST_DATE:
        raise ApiError(
            400,
            "invalid_parameter",
            f"{name} must be between {EARLIEST_DATE.isoformat()} and {LATEST_DATE.isoformat()}.",
        )
    return value


def list_param(request: HttpRequest, name: str, allowed: Sequence[str]) -> list[str]:
    """A comma-separated (or repeated) parameter whose values must be in ``allowed``."""
    values = [v for raw in request.GET.getlist(name) for v in raw.split(",") if v]
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise ApiError(
            400,
            "invalid_parameter",
            f"Unknown {name}: {', '.join(unknown)}. Use: {', '.join(allowed)}.",
        )
    return values


def day_range(
    since: datetime.date, until: datetime.date
) -> tuple[datetime.datetime, datetime.datetime]:
    """Aware datetimes covering the days since..until, both inclusive."""
    if since > until:
        raise ApiError(400, "invalid_parameter", "since must not be after until.")
    start = datetime.datetime.combine(since, datetime.time.min)
    end = datetime.datetime.combine(until + datetime.timedelta(days=1), datetime.time.min)
    return timezone.make_aware(start), timezone.make_aware(end)


def json_body(request: HttpRequest) -> dict[str, Any]:
    """The POST body: JSON, or form fields (lists kept as lists)."""
    if request.content_type == "application/json":
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            raise ApiError(400, "invalid_body", "The body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_body", "The body must be a JSON object.")
        return body
    return {key: request.POST.getlist(key) for key in request.POST}


def paginate(request: HttpRequest, queryset: models.QuerySet[Any]) -> tuple[list[Any], dict]:
    size = int_param(request, "page_size", int(get_setting("API_PAGE_SIZE")), 1, 500)
    paginator = Paginator(queryset, size)
    number = int_param(request, "page", 1, 1, max(1, paginator.num_pages))
    page = paginator.page(number)
    meta = {"count": paginator.count, "page": number, "pages": paginator.num_pages}
    meta["page_size"] = size
    return list(page.object_list), meta


# -- serialisation ---------------------------------------------------------------------


def job_to_dict(job: AIJob, *, detail: bool = False, row_content: bool = True) -> dict[str, Any]:
    """A job as JSON; ``detail`` adds its prompt, answer, steps and usage (the prompt
    and answer only with ``row_content``: they hold what the job read from its row)."""
    data: dict[str, Any] = {
        "id": job.pk,
        "status": job.status,
        "phase": job.phase,
        "progress": job.progress,
        "attempts": job.attempts,
        "function": job.function,
        "target": {
            "model": job.content_type.app_label + "." + job.content_type.model
            if job.content_type
            else None,
            "id": job.object_id or None,
        },
        "field": job.field_name,
        "tenant": job.tenant,
        "triggered_by": job.triggered_by,
        "provider": job.provider,
        "model": job.model,
        "error_code": job.error_code,
        "error": job.error,
        "input_tokens": job.input_tokens,
        "output_tokens": job.output_tokens,
        "cost_usd": job.cost_usd,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "enqueued_at": job.enqueued_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
    }
    if detail:
        data["prompt"] = job.prompt if row_content else None
        data["output"] = job.output if row_content else None
        # A streamed answer's text so far while the job runs ("" otherwise).
        data["partial_output"] = job.partial_output if row_content else ""
        data["steps"] = job.steps
        data["usage"] = [usage_to_dict(u) for u in job.usages.order_by("pk")]
    return data


def usage_to_dict(usage: AIUsage) -> dict[str, Any]:
    return {
        "id": usage.pk,
        "job": usage.job_id,
        "tenant": usage.tenant,
        "provider": usage.provider,
        "model": usage.model,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cached_tokens": usage.cached_tokens,
        "cost_usd": usage.cost_usd,
        "duration_ms": usage.duration_ms,
        "success": usage.success,
        "cache_hit": usage.cache_hit,
        "error_code": usage.error_code,
        "created_at": usage.created_at,
    }
