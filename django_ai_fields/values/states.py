"""The state of a row's AI value, as conditions on the row's queryset.

Each condition is a correlated subquery on the row's jobs (it uses the AIJob target
index), so filtering a queryset by it, or counting, is one query whatever the number
of rows. The value's job is the row's latest ``succeeded`` job for the field (the
one that wrote the value the row holds):

- **stale**: that job is an answer made under another definition than the field's
  now (declare/definition.py). A hand edit or a revert is never stale; a value
  whose job recorded no definition (written before definitions were recorded) or
  that no job wrote (``bulk_create``) is not known to be stale, and counts as current;
- **edited**: that job is a hand edit or a revert;
- **empty**: no value; **in review**: an answer waits for a person; **failed**: the
  field's latest job failed;
- **current**: a value, neither stale nor edited by hand.
"""

from __future__ import annotations

from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Case, Exists, F, OuterRef, Q, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.db.models.lookups import Exact, In
from django.utils.translation import gettext_lazy as _

from .. import row_keys
from ..declare.definition import definition_hash
from ..fields import AIFieldMixin, AIGeneratedJSONField
from ..models import FIELD_FUNCTION, HAND_WRITTEN, AIJob, Status

CURRENT = "current"
STALE = "stale"
EMPTY = "empty"
IN_REVIEW = "in_review"
FAILED = "failed"
EDITED = "edited"

LABELS = {
    CURRENT: _("current"),
    STALE: _("stale"),
    EMPTY: _("empty"),
    IN_REVIEW: _("in review"),
    FAILED: _("failed"),
    EDITED: _("edited by hand"),
}


def rows_in_state(rows: models.QuerySet[Any], field: AIFieldMixin, state: str) -> Any:
    """``rows`` whose value of ``field`` is in ``state`` (one of LABELS)."""
    return rows.filter(condition(state, field, rows.db))


def condition(state: str, field: AIFieldMixin, db: str = "default") -> Q:
    """The filter selecting the rows whose ``field`` value is in ``state``."""
    if state == STALE:
        return stale_q(field, db)
    if state == EDITED:
        return edited_q(field, db)
    if state == EMPTY:
        return empty_q(field)
    if state == IN_REVIEW:
        return Q(Exists(jobs_of_row(field, db).filter(status=Status.IN_REVIEW)))
    if state == FAILED:
        latest = jobs_of_row(field, db).order_by("-pk").values("status")[:1]
        return Q(Exact(Subquery(latest), Status.FAILED))
    if state == CURRENT:
        return ~empty_q(field) & ~stale_q(field, db) & ~edited_q(field, db)
    raise ValueError(f"Unknown value state {state!r}; known: {', '.join(LABELS)}.")


def stale_q(field: AIFieldMixin, db: str = "default") -> Q:
    """The value's job is an answer made under a definition other than the field's now."""
    under = (
        value_jobs(field, db)
        .annotate(
            under=Case(
                When(triggered_by__in=HAND_WRITTEN, then=Value("")), default=F("definition_hash")
            )
        )
        .values("under")[:1]
    )
    written_under = Coalesce(Subquery(under), Value(""))
    return ~Q(In(written_under, ["", definition_hash(field)]))


def edited_q(field: AIFieldMixin, db: str = "default") -> Q:
    """The value's job is a hand edit or a revert."""
    source = value_jobs(field, db).values("triggered_by")[:1]
    return Q(In(Coalesce(Subquery(source), Value("")), list(HAND_WRITTEN)))


def empty_q(field: AIFieldMixin) -> Q:
    q = Q(**{f"{field.name}__isnull": True})
    if not isinstance(field, AIGeneratedJSONField):
        q |= Q(**{field.name: ""})
    return q


def value_jobs(field: AIFieldMixin, db: str) -> models.QuerySet[AIJob]:
    """The row's jobs that wrote a value of ``field``, newest first."""
    return jobs_of_row(field, db).filter(status=Status.SUCCEEDED).order_by("-pk")


def jobs_of_row(field: AIFieldMixin, db: str) -> models.QuerySet[AIJob]:
    """The jobs of the outer query's row for ``field`` (they belong to the model that
    declares it, docs/fields.md#multi-table-inheritance)."""
    content_type = ContentType.objects.db_manager(db).get_for_model(field.model_class)
    return AIJob.objects.filter(
        content_type=content_type,
        object_id=row_keys.in_sql(OuterRef("pk"), field.model_class, db),
        field_name=field.name,
        function=FIELD_FUNCTION,
    )
