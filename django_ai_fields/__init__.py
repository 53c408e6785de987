"""Django model fields whose values an LLM writes.

The package in layers, each importing only the ones below it (no import cycles):

- shared vocabulary: ``codes`` (statuses, phases, error codes), ``conf`` (settings),
  ``queues`` (the RQ queue, the Redis handle, the tasks' dotted paths), ``signals``,
  ``crypto``, ``privacy/`` (PII masking), ``models``;
- ``providers/``: the SDK adapters, knowing nothing of fields, tenants or jobs;
- ``money/`` (prices, quotas), ``tenants/`` (resolution, policies, permissions,
  concurrency caps, credentials) and ``observability.metrics``;
- ``dispatch/``: the one writer of ``AIJob.status`` (``transitions``) and the one
  way onto the task queue (``handover``, ``backend``);
- declaration: ``fields``, ``functions`` and ``declare/`` (options, prompts, tokens,
  outputs, checks);
- ``intake/``: change tracking and the outbox;
- ``generation``: field generation, the built-in AI function that writes a field;
- ``calling/``: the call pipeline, routing, breaker, rate limits, moderation,
  streaming, the result cache, getting a usable answer (``observability.calls``
  logs each call);
- ``jobs/``: what a run does (lifecycle, engine), chunks, drains, provider batches,
  the sweep, and ``jobs.tasks`` (every task entry point: where a task starts);
- surfaces: ``api``, ``status``, ``admin/``, ``http/`` (JSON API), ``urls``,
  ``templatetags/``, ``management/``.

A lower layer starts a task by its dotted path (``queues.RUN_JOB``), never by
importing ``jobs``. The public surface is in docs/reference.md.
"""

__version__ = "0.1.0"
