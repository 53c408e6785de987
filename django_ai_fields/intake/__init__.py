"""Intake: from a model save to an enqueued AIJob.

``tracking`` (which trigger fields changed), ``outbox`` (the AIJob rows written in
the save's transaction, handed over on commit by the tasks' dotted paths: backfill
chunks, delayed runs) and ``drain_requests`` (what a live save's commit puts on RQ:
one drain per burst, not one RQ job per AI job).
"""
