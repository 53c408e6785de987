"""The outbox: AIJob rows written in the save's transaction, handed to a drain on
commit (dispatch.handover).

If the queue is unreachable at commit the job simply stays ``pending``; the sweep
(``ai_requeue`` or the worker's periodic run) hands it over later.

Jobs are written beside their row: in the database the row was saved to (the
router's write database for it, or the one named with ``using()``), in its
django-tenants schema, and they record the job context captured there
(dispatch/context.py), which the hand-over carries to the worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, models, router, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .. import row_keys
from ..dispatch import context, handover, transitions
from ..fields import AIFieldMixin
from ..functions import json_safe
from ..models import FIELD_FUNCTION, HAND_EDIT, HAND_WRITTEN, OPEN_STATUSES, AIJob, Phase
from ..tenants import resolve_tenant


def request_jobs(
    instance: models.Model,
    fields: Sequence[AIFieldMixin],
    *,
    triggered_by: str,
    using: str | None = None,
    force: bool = False,
    enqueue_new: bool = True,
) -> list[AIJob]:
    """Create (or reuse) one open job per field and enqueue new ones on commit
    (``enqueue_new=False``: the caller enqueues them, e.g. in chunks). Without
    ``force`` a field whose value a person edited (``keep_manual_edits``) is left out."""
    using = using or database_of(instance)
    if not force:
        fields = without_hand_edits(instance, fields, using)
    if not fields:
        return []
    tenant = resolve_tenant(instance)
    here = context.capture(using)
    if triggered_by != "create":
        supersede_proposals([row_keys.key_of(instance)], fields, bool(tenant), using=using)
    jobs, created_ids = [], []
    for field in fields:
        job, created = _reuse_or_create(
            job_content_type(field, using),
            row_keys.key_of(instance),
            field,
            tenant=tenant,
            input_hash=field.current_input_hash(instance),
            triggered_by=triggered_by,
            force=force,
            using=using,
            **recorded(here),
        )
        if created:
            created_ids.append(job.pk)
        jobs.append(job)
    transitions.opened(jobs)
    if created_ids and enqueue_new:
        transaction.on_commit(
            partial(handover.to_drain, created_ids, here), using=using, robust=True
        )
    return jobs


def database_of(instance: models.Model) -> str:
    """Where a row's jobs go: the database its save went (or would go) to. A row read
    from a replica is written to the primary, and so are its jobs."""
    return router.db_for_write(type(instance), instance=instance)


def recorded(job_context: context.Context) -> dict[str, object]:
    """The job columns recording where it runs (the database is where the job is)."""
    return {"schema": job_context.get("schema", ""), "context": job_context.get("extra", {})}


def request_rows(
    instances: Sequence[models.Model],
    field: AIFieldMixin,
    *,
    triggered_by: str,
    using: str | None = None,
    force: bool = True,
) -> list[AIJob]:
    """``request_jobs`` for one field of many rows (a backfill), not enqueued: rows
    without an open job get theirs in one INSERT; the others coalesce one by one."""
    if not instances:
        return []
    using = using or database_of(instances[0])
    keys = [row_keys.key_of(obj) for obj in instances]
    tenant_bound = any(resolve_tenant(obj) for obj in instances)
    supersede_proposals(keys, [field], tenant_bound, using=using)
    busy = rows_with_open_jobs(keys, field, using)
    free = [obj for obj in instances if row_keys.key_of(obj) not in busy]
    new_jobs = unsaved_jobs(free, field, using, triggered_by=triggered_by, force=force)
    try:
        with transaction.atomic(using=using):
            created = AIJob.objects.using(using).bulk_create(new_jobs)
    except IntegrityError:  # a concurrent save opened a job for one of the rows
        busy.update(row_keys.key_of(obj) for obj in free)
        created = []
    transitions.opened(created)
    by_row = {job.object_id: job for job in created}
    for obj, key in zip(instances, keys, strict=True):
        if key in busy:
            (by_row[key],) = request_jobs(
                obj, [field], triggered_by=triggered_by, using=using, force=force, enqueue_new=False
            )
    return [by_row[key] for key in keys]


def unsaved_jobs(
    rows: list[models.Model], field: AIFieldMixin, using: str, *, triggered_by: str, force: bool
) -> list[AIJob]:
    """A new job for ``field`` of each row, not saved yet, in the context of ``using``."""
    content_type = job_content_type(field, using)
    here = recorded(context.capture(using))
    return [
        AIJob(
            content_type=content_type,
            object_id=row_keys.key_of(obj),
            field_name=field.name,
            tenant=resolve_tenant(obj),
            input_hash=field.current_input_hash(obj),
            triggered_by=triggered_by,
            force=force,
            **here,
        )
        for obj in rows
    ]


def rows_with_open_jobs(keys: list[str], field: AIFieldMixin, using: str) -> set[str]:
    """The keys among ``keys`` whose row has an open job for ``field`` (one query)."""
    open_jobs = AIJob.objects.using(using).filter(
        content_type=job_content_type(field, using),
        field_name=field.name,
        function=FIELD_FUNCTION,
        status__in=OPEN_STATUSES,
        object_id__in=keys,
    )
    return set(open_jobs.values_list("object_id", flat=True))


def job_content_type(field: AIFieldMixin, using: str = "default") -> ContentType:
    """A field's jobs belong to the model that declares it: with multi-table
    inheritance a save through the parent or the child finds the same job."""
    return ContentType.objects.db_manager(using).get_for_model(field.model_class)


def without_hand_edits(
    instance: models.Model, fields: Sequence[AIFieldMixin], using: str
) -> list[AIFieldMixin]:
    """``fields`` minus those whose value is a person's edit, kept until an explicit
    regenerate: the field's latest job is a hand-edit record (one query, none when
    no field keeps hand edits or holds a value)."""
    keeping = [
        f
        for f in fields
        if f.ai.keep_manual_edits and getattr(instance, f.attname) not in (None, "", [], {})
    ]
    if not keeping:
        return list(fields)
    targets = models.Q()
    for field in keeping:
        targets |= models.Q(content_type=job_content_type(field, using), field_name=field.name)
    newest = (
        AIJob.objects.using(using)
        .filter(targets, object_id=row_keys.key_of(instance), function=FIELD_FUNCTION)
        .values("content_type", "field_name")
        .annotate(last=models.Max("pk"))
        .values("last")
    )
    edited = set(
        AIJob.objects.using(using)
        .filter(pk__in=newest, triggered_by__in=HAND_WRITTEN)
        .values_list("field_name", flat=True)
    )
    return [f for f in fields if f not in keeping or f.name not in edited]


def supersede_proposals(
    object_ids: Sequence[str],
    fields: Sequence[AIFieldMixin],
    tenant_bound: bool,
    *,
    using: str,
    reason: str = "",
) -> None:
    """A trigger change (or a new request, or a hand edit) outdates the answers of
    these rows' fields that wait for review: they end superseded. Only fields that may
    hold one are looked at, with one query: those with ``review=True``, or any when a
    row has a tenant (whose policy may ask for review)."""
    reviewable = [f for f in fields if f.ai.review or tenant_bound]
    if not reviewable:
        return
    targets = models.Q()
    for field in reviewable:
        targets |= models.Q(content_type=job_content_type(field, using), field_name=field.name)
    waiting = AIJob.objects.using(using).filter(
        targets, object_id__in=list(object_ids), function=FIELD_FUNCTION
    )
    transitions.supersede_proposals(waiting, reason or str(PROPOSAL_OUTDATED))


PROPOSAL_OUTDATED = _(
    "The row changed (or a fresh value was asked for) while this answer waited for review."
)


def record_hand_edits(
    instance: models.Model,
    fields: Sequence[AIFieldMixin],
    *,
    using: str | None = None,
    source: str = HAND_EDIT,
) -> list[AIJob]:
    """A person gave these AI fields their values (``source``: ``"manual"``, or
    ``"revert"`` for api.revert): open jobs for them are cancelled and answers waiting
    for review superseded (they would overwrite the edit), and a finished job records
    the edit, so badges, ``latest_job``, the history and the admin show it and later
    saves keep it."""
    using = using or database_of(instance)
    tenant = resolve_tenant(instance)
    supersede_proposals(
        [row_keys.key_of(instance)],
        fields,
        bool(tenant),
        using=using,
        reason=str(HAND_EDIT_CANCELLED),
    )
    records = []
    for field in fields:
        target = {
            "content_type": job_content_type(field, using),
            "object_id": row_keys.key_of(instance),
            "field_name": field.name,
            "function": FIELD_FUNCTION,
        }
        transitions.cancel(AIJob.objects.using(using).filter(**target), str(HAND_EDIT_CANCELLED))
        records.append(
            {
                **target,
                "tenant": tenant,
                "triggered_by": source,
                "input_hash": field.current_input_hash(instance),
                "output": json_safe(getattr(instance, field.attname)),
            }
        )
    return transitions.record_succeeded(records, using)


HAND_EDIT_CANCELLED = _("The value was edited by hand; the edit is kept.")


def _reuse_or_create(
    content_type: ContentType,
    object_id: str,
    field: AIFieldMixin,
    *,
    using: str,
    **values: object,
) -> tuple[AIJob, bool]:
    """Coalesce into the open job for this row and field, or start a new one. Safe
    against the races around it: the open job leased (or finished, or deleted) right
    after the UPDATE, and a concurrent save creating the open job between the
    UPDATE and the INSERT (then the UPDATE is tried again)."""
    target = {"content_type": content_type, "object_id": object_id, "field_name": field.name}
    updates = dict(values)
    if not values.get("force"):
        updates.pop("force")  # an explicit regenerate's force flag survives later saves
    for attempt in range(COALESCE_ATTEMPTS):
        job = _coalesce(target, updates, using)
        if job is not None:
            return job, False
        try:
            with transaction.atomic(using=using):
                return AIJob.objects.using(using).create(**target, **values), True
        except IntegrityError:
            # A concurrent save created the open job between our UPDATE and INSERT.
            if attempt == COALESCE_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


# How many times a save tries to coalesce into, or create, a row field's open job.
COALESCE_ATTEMPTS = 3


def _coalesce(target: dict[str, object], updates: dict[str, object], using: str) -> AIJob | None:
    """Merge the save into the row field's open job; the job, or None when none is
    open. Read back by status first; a save outside a transaction commits the UPDATE
    at once, and a worker may lease the job before the read: it is then the newest
    job of the row and field (None only if it was deleted meanwhile)."""
    jobs = AIJob.objects.using(using).filter(**target, function=FIELD_FUNCTION)
    open_jobs = jobs.filter(status__in=OPEN_STATUSES).exclude(
        phase=Phase.BATCH  # its request is with the provider already
    )
    if not open_jobs.update(**updates, updated_at=timezone.now()):
        return None
    return open_jobs.first() or jobs.order_by("-pk").first()
