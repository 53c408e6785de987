"""Intake: from a model save to an enqueued AIJob.

``tracking`` (which trigger fields changed), ``outbox`` (the AIJob rows written in
the save's transaction and handed over on commit, by the tasks' dotted paths: live
jobs to a drain, backfills as chunks, delayed retries as RQ jobs of their own) and
``drain_requests`` (what a live commit puts on RQ: one drain per burst, not one RQ
job per AI job).
"""
