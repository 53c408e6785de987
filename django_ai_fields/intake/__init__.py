"""Intake: from a model save to an enqueued AIJob.

``tracking`` (which trigger fields changed) and ``outbox`` (the AIJob rows written in
the save's transaction, enqueued on commit by the tasks' dotted paths).
"""
