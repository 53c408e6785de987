"""Signals fired along a job's life (docs/how-it-works.md).

- ``job_requested(sender=AIJob, job)``: a job was created or reused by a save.
- ``job_completed(sender=AIJob, job)``: the job succeeded (after the write-back commit).
- ``job_failed(sender=AIJob, job, error_code, error)``: the job failed for good.
- ``field_updated(sender=<model class>, instance_pk, field_name, value, job)``:
  the generated value was written to the row.
- ``review_requested(sender=AIJob, job)``: an answer waits for a person's accept or
  reject (``review=True``, docs/values.md); sent after the commit.
- ``quota_threshold_reached(sender=Quota, tenant, quota, fraction)``: a tenant's use
  of ``quota`` crossed ``fraction`` (one of ``QUOTA_ALERT_AT``) of its limit this
  period; sent once per crossing, after the commit (docs/quotas.md has a receiver
  that e-mails the site admins).
"""

from django.dispatch import Signal

job_requested = Signal()
job_completed = Signal()
job_failed = Signal()
field_updated = Signal()
quota_threshold_reached = Signal()
review_requested = Signal()


__all__ = [
    "field_updated",
    "job_completed",
    "job_failed",
    "job_requested",
    "quota_threshold_reached",
    "review_requested",
]
