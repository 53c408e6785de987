"""Dispatch: the one writer of job state and the one way onto the task queue.

``transitions`` makes every change of ``AIJob.status`` (guarded, and each one logged,
counted and signalled); ``steps`` is the step log written with them; ``handover``
gives open jobs to the queue (a drain, chunks, a delayed run) or leaves them pending
when it is down; ``backend`` is the task queue itself (RQ), the only module that
puts a task on it. Above the models and the queue handle, below everything that
requests, runs or shows jobs.
"""
