"""What ``ai_cleanup`` keeps whatever its age: the value history of existing rows.

For every row that still exists and each of its AI fields, the newest
``AI_FIELDS["HISTORY_KEEP"]`` jobs that wrote a value (at least one: the newest
holds the definition the current value was made under, and without it a stale value
would look current). Older ones, and a deleted row's, go like any finished job.
Jobs waiting for review are not finished, so they are never deleted.
"""

from __future__ import annotations

from typing import Any, TypeVar

from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Exists, F, OuterRef, Q

from .. import row_keys
from ..conf import get_setting
from ..fields import ai_fields_of
from ..models import FIELD_FUNCTION, AIJob, Status

Jobs = TypeVar("Jobs", bound=models.QuerySet[Any])


def without_kept_history(jobs: Jobs) -> Jobs:
    """``jobs`` minus those the value history keeps (one condition, no extra query
    per job: a correlated subquery on the AIJob target index and one per model)."""
    return jobs.exclude(kept_history(jobs.db))


def kept_history(using: str = "default") -> Q:
    keep = max(int(get_setting("HISTORY_KEEP")), 1)
    newer_values = AIJob.objects.filter(
        content_type=OuterRef("content_type"),
        object_id=OuterRef("object_id"),
        field_name=OuterRef("field_name"),
        function=FIELD_FUNCTION,
        status=Status.SUCCEEDED,
        pk__gt=OuterRef("pk"),
    ).order_by("pk")
    beyond_kept = Exists(newer_values.values("pk")[keep - 1 : keep])
    value_job = Q(status=Status.SUCCEEDED, function=FIELD_FUNCTION)
    return value_job & ~Q(beyond_kept) & row_exists(using)


def row_exists(using: str) -> Q:
    """The job's target row exists (a condition per model with AI fields)."""
    exists = Q(pk__in=[])
    for model in declaring_models():
        content_type = ContentType.objects.db_manager(using).get_for_model(model)
        rows = row_keys_match(model, using)
        exists |= Q(content_type=content_type) & Q(Exists(rows))
    return exists


def row_keys_match(model: type[models.Model], using: str) -> models.QuerySet[Any]:
    """The outer job's target row: by its primary key index, or, for a composite key,
    by the key's encoding computed per row (row_keys.in_sql)."""
    rows = model._base_manager.all()
    if row_keys.is_composite(model):
        key = row_keys.in_sql(F("pk"), model, using)
        return rows.annotate(_ai_key=key).filter(_ai_key=OuterRef("object_id"))
    return rows.filter(pk=row_keys.to_pk_sql(OuterRef("object_id"), model, using))


def declaring_models() -> list[type[models.Model]]:
    """The concrete models that declare AI fields (a field's jobs are theirs)."""
    found = {
        field.model_class
        for model in apps.get_models()
        if not model._meta.proxy
        for field in ai_fields_of(model)
    }
    return sorted(found, key=lambda model: model._meta.label)
