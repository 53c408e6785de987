"""Review before write: a person accepts or rejects an answer held as a proposal.

A field with ``review=True`` (or a tenant whose policy asks for review) ends its job
``in_review`` with the answer in ``output`` and the row untouched (jobs/engine.py).
``accept`` writes it, or the person's edited value validated like an answer, through
the same guarded write-back as an answer, and only while the row's inputs are those
the proposal was made from; ``reject`` ends the job ``cancelled``. Either records
who and when on the job (``reviewed_by``, ``reviewed_at``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from .. import databases
from ..declare.outputs import InvalidOutput
from ..dispatch import transitions
from ..functions import Cancelled, Superseded, json_safe
from ..generation import FieldGeneration, RowData
from ..models import FIELD_FUNCTION, HAND_EDIT, AIJob, Status
from ..privacy import redaction
from ..tenants import resolve_tenant
from ..tenants.policies import policy_for


class ReviewError(Exception):
    """The proposal cannot be accepted or rejected; the message says why."""


class NotInReview(ReviewError):
    """The job waits for no review (any more): accepted, rejected or superseded."""


class ProposalOutdated(ReviewError):
    """The row's inputs changed since the proposal was made (or the row is gone):
    nothing was written, and the proposal ended superseded."""


# accept(value=...) not given: the proposal as it is.
UNSET: Any = object()

REJECTED = _("The proposal was rejected.")
INPUTS_CHANGED = _(
    "The row's inputs changed since this proposal was made; it was not written "
    "(a newer job answers for the new inputs)."
)
ROW_MOVED = _("The row belongs to another tenant now; the proposal was not written.")


def accept(job: AIJob, user: Any = None, value: Any = UNSET) -> AIJob:
    """Write the proposal (or ``value``, the person's edit, validated like an answer)
    to the row and end the job ``succeeded``. Raises ValidationError for an invalid
    value, NotInReview, or ProposalOutdated when the row's inputs changed since."""
    generation = generation_for(job)
    edited = value is not UNSET
    if edited:
        try:
            value = generation.parse_value(value)
        except InvalidOutput as exc:
            raise ValidationError(str(exc), code="invalid_output") from None
        edited = json_safe(value) != job.output
    else:
        value = job.output
    reviewer = reviewer_name(user)
    using = job._state.db or "default"
    try:
        # The row is read and written in the job's database (databases.for_decisions).
        with databases.pinned(using), transaction.atomic(using=using):
            data = unchanged_row(generation, job)
            written = restored(generation, data, value, job.tenant)
            if not transitions.accept(
                job, reviewer=reviewer, **accepted_columns(job, value, edited)
            ):
                raise NotInReview(not_in_review(job))
            generation.save_output(written, data)
            transaction.on_commit(
                lambda: generation.after_commit(job, written), using=using, robust=True
            )
    except (Superseded, Cancelled) as exc:
        outdated = AIJob.objects.using(using).filter(pk=job.pk)
        transitions.supersede_proposals(outdated, str(exc))
        raise ProposalOutdated(str(exc)) from None
    return job


def reject(job: AIJob, user: Any = None) -> AIJob:
    """End the proposal ``cancelled``; the row is left as it is. Raises NotInReview."""
    if not transitions.reject(job, reviewer=reviewer_name(user), reason=str(REJECTED)):
        raise NotInReview(not_in_review(job))
    return job


@dataclass
class Outcome:
    """What a bulk accept or reject did: the jobs done, and why the others were not."""

    done: list[AIJob] = field(default_factory=list)
    refused: dict[int, str] = field(default_factory=dict)


def accept_many(jobs: Iterable[AIJob], user: Any = None) -> Outcome:
    """Accept each proposal as it is, each in its own transaction."""
    outcome = Outcome()
    for job in jobs:
        try:
            outcome.done.append(accept(job, user))
        except ReviewError as exc:
            outcome.refused[job.pk] = str(exc)
    return outcome


def reject_many(jobs: Iterable[AIJob], user: Any = None) -> Outcome:
    outcome = Outcome()
    for job in jobs:
        try:
            outcome.done.append(reject(job, user))
        except ReviewError as exc:
            outcome.refused[job.pk] = str(exc)
    return outcome


# -- internals ----------------------------------------------------------------------


def generation_for(job: AIJob) -> FieldGeneration:
    if job.status != Status.IN_REVIEW or job.function != FIELD_FUNCTION:
        raise NotInReview(not_in_review(job))
    if job.content_type is None:
        raise NotInReview(not_in_review(job))
    try:
        return FieldGeneration(job.content_type, job.object_id, job.field_name)
    except (Cancelled, LookupError, ValueError) as exc:
        raise ReviewError(str(exc)) from None


def unchanged_row(generation: FieldGeneration, job: AIJob) -> RowData:
    """The row, loaded now; raises Superseded unless its inputs (and tenant) are
    those the proposal was made from, Cancelled when it was deleted."""
    data = generation.prepare(None, job.tenant)
    if resolve_tenant(data.instance) != job.tenant:
        raise Superseded(str(ROW_MOVED))
    if generation.input_hash(data) != job.input_hash:
        raise Superseded(str(INPUTS_CHANGED))
    return data


def restored(generation: FieldGeneration, data: RowData, value: Any, tenant: str) -> Any:
    """The value with the personal data the prompt's redaction masked put back
    (``restore_pii``): the job keeps the placeholders only, so the masking is made
    again from the row, whose inputs are those of the proposal (checked above)."""
    if not generation.options.restore_pii:
        return value
    types = redaction.types_for(generation, policy_for(tenant))
    _prompt, masking = redaction.redact(generation.build_prompt(data), types)
    return value if masking is None else generation.restore_output(value, masking)


def accepted_columns(job: AIJob, value: Any, edited: bool) -> dict[str, Any]:
    """An edited accept is a person's value: recorded as a hand edit (kept by
    ``keep_manual_edits``, never stale), the proposal kept in the step log."""
    if not edited:
        return {"message": "Accepted"}
    return {
        "message": "Accepted with an edit",
        "proposal": job.output,
        "output": json_safe(value),
        "triggered_by": HAND_EDIT,
    }


def reviewer_name(user: Any) -> str:
    if user is None or not getattr(user, "is_authenticated", False):
        return ""
    return str(user.get_username())


def not_in_review(job: AIJob) -> str:
    current = AIJob.objects.filter(pk=job.pk).values_list("status", flat=True).first()
    label = Status(current).label if current else _("deleted")
    return str(_("AI job #%(id)s does not wait for review: it is %(status)s.")) % {
        "id": job.pk,
        "status": str(label).lower(),
    }


__all__ = ["NotInReview", "ProposalOutdated", "ReviewError"]
