"""Django model fields whose values an LLM writes.

The package in layers, each importing only the ones below it (no import cycles):

- shared vocabulary: ``codes`` (statuses, phases, error codes), ``conf`` (settings),
  ``queues`` (the RQ queue, the Redis handle, the tasks' dotted paths), ``signals``,
  ``crypto``, ``models``;
- ``providers/``: the SDK adapters, knowing nothing of fields, tenants or jobs;
- ``money/`` (prices, quotas) and ``tenants/`` (resolution, policies, permissions,
  concurrency caps, credentials);
- declaration: ``fields``, ``functions`` and ``declare/`` (prompts, tokens, outputs,
  checks, field generation);
- ``intake/``: change tracking and the outbox;
- ``observability/``: logs, metrics, traces, health, usage aggregates;
- ``calling/``: the call pipeline, routing, breaker, rate limits, moderation,
  streaming, the result cache, getting a usable answer;
- ``jobs/``: the lifecycle (every AIJob state change), the run pipeline, chunks,
  provider batches, the sweep, and ``jobs.tasks`` (every RQ entry point);
- surfaces: ``api``, ``status``, ``admin/``, ``http/`` (JSON API), ``urls``,
  ``templatetags/``, ``management/``.

A lower layer starts a task by its dotted path (``queues.RUN_JOB``), never by
importing ``jobs``. Old import paths of the flat layout keep working for one
release, with a DeprecationWarning (``_deprecated``).
"""

from . import _deprecated

_deprecated.install()

__version__ = "0.1.0"
