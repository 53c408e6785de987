"""Job status lookups shared by the template tags, the admin and the JSON API.

``with_ai_status(rows)`` loads the latest job of every row and AI field in one
query per model and caches it on the instances, so a list page costs one query
for all its badges instead of one per row and field.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.db.models import Max, Q
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext_lazy as _

from . import row_keys
from .fields import ai_fields_of
from .models import FIELD_FUNCTION, HAND_WRITTEN, UNFINISHED_STATUSES, AIJob, Status

CACHE_ATTR = "_ai_status_cache"
# Columns a badge never needs; prompt and output can be large.
HEAVY_COLUMNS = ("prompt", "output", "payload")

NO_JOB_LABEL = _("Not generated")
HAND_EDIT_LABEL = _("Edited by hand")

Rows = TypeVar("Rows", bound=Iterable[Any])


def latest_jobs(
    model: type[models.Model], object_ids: Iterable[Any], field_names: Sequence[str]
) -> dict[tuple[str, str], AIJob]:
    """The newest job per (object id, field) of these rows, in one query. A field's
    jobs belong to the model declaring it (a multi-table parent's, for inherited ones)."""
    ids = {row_keys.key_of_pk(model, pk) for pk in object_ids}
    if not ids or not field_names:
        return {}
    by_owner: dict[type[models.Model], list[str]] = defaultdict(list)
    for name in field_names:
        by_owner[owner_of(model, name)].append(name)
    owners = Q()
    for owner, names in by_owner.items():
        owners |= Q(content_type=ContentType.objects.get_for_model(owner), field_name__in=names)
    targets = AIJob.objects.filter(owners, object_id__in=ids, function=FIELD_FUNCTION)
    newest = (
        targets.order_by()
        .values("content_type", "object_id", "field_name")
        .annotate(last=Max("pk"))
        .values("last")
    )
    jobs = AIJob.objects.filter(pk__in=newest).defer(*HEAVY_COLUMNS)
    return {(job.object_id, job.field_name): job for job in jobs}


def owner_of(model: type[models.Model], field_name: str) -> type[models.Model]:
    """The model whose jobs a field's are: the one declaring it."""
    try:
        return model._meta.get_field(field_name).model
    except FieldDoesNotExist:
        return model


def with_ai_status(rows: Rows, fields: Sequence[str] | None = None) -> Rows:
    """Cache the latest job per AI field on every row; returns ``rows``.

    A QuerySet is evaluated (its result cache is filled), so iterating it
    afterwards yields the same, annotated instances.
    """
    by_model: dict[type[models.Model], list[models.Model]] = defaultdict(list)
    for obj in rows:
        by_model[type(obj)].append(obj)
    for model, instances in by_model.items():
        names = list(fields) if fields is not None else [f.name for f in ai_fields_of(model)]
        jobs = latest_jobs(model, (obj.pk for obj in instances), names)
        for obj in instances:
            cache = getattr(obj, CACHE_ATTR, None) or {}
            cache.update({name: jobs.get((row_keys.key_of(obj), name)) for name in names})
            setattr(obj, CACHE_ATTR, cache)
    return rows


def job_for(obj: models.Model, field_name: str) -> AIJob | None:
    """The latest job of a row's field: from the with_ai_status cache (a snapshot taken
    when it ran), else one query."""
    cache = getattr(obj, CACHE_ATTR, None)
    if cache is not None and field_name in cache:
        return cache[field_name]
    return latest_jobs(type(obj), [obj.pk], [field_name]).get((row_keys.key_of(obj), field_name))


def status_url(obj: models.Model, field_name: str) -> str:
    """The JSON status endpoint of a row's field, or "" if the URLs are not installed."""
    opts = obj._meta
    try:
        return reverse(
            "django_ai_fields:row-status",
            kwargs={"model": opts.label_lower, "pk": row_keys.key_of(obj), "field": field_name},
        )
    except NoReverseMatch:
        return ""


def badge_context(obj: models.Model, field_name: str, job: AIJob | None) -> dict[str, Any]:
    """What ``django_ai_fields/status.html`` renders."""
    if job is None:
        state, label = "none", NO_JOB_LABEL
    elif job.triggered_by in HAND_WRITTEN and job.status == Status.SUCCEEDED:
        state, label = "manual", HAND_EDIT_LABEL
    else:
        state, label = job.status, Status(job.status).label
    unfinished = job is not None and job.status in UNFINISHED_STATUSES
    return {
        "object": obj,
        "field_name": field_name,
        "job": job,
        "state": state,
        "label": label,
        "unfinished": unfinished,
        "progress": job.progress if job is not None else 0,
        "phase": job.phase if job is not None else "",
        "error_code": job.error_code if job is not None and state == Status.FAILED else "",
        "error": job.error if job is not None and state == Status.FAILED else "",
        "status_url": status_url(obj, field_name) if unfinished else "",
    }


__all__ = [
    "badge_context",
    "job_for",
    "latest_jobs",
    "status_url",
    "with_ai_status",
]
