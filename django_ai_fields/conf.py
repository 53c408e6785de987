"""The ``AI_FIELDS`` settings dict: every default in one place, read at call time."""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Provider used by fields that name none: "openai", "anthropic", "azure",
    # "offline" or a dotted path to a Provider subclass.
    "DEFAULT_PROVIDER": "openai",
    "DEFAULT_MODEL": "gpt-4o-mini",
    # Per provider name, a dict of PROVIDER_KEYS (below): {"openai": {"API_KEY": ...}}.
    "PROVIDERS": {},
    # Queue name from RQ_QUEUES that jobs go to.
    "QUEUE": "default",
    # -- the task queue and the shared state (docs/task-backends.md) --
    # "rq" (django-rq, the default), "celery" (the project's Celery app) or "django"
    # (Django's task framework: django.tasks on 6.0+, the django-tasks backport on 5.2).
    "TASK_BACKEND": "rq",
    # Celery: the app (a dotted path; None: the one the project created), and the
    # queue every wake-up goes to (None: the project's CELERY_TASK_ROUTES, else
    # Celery's default queue).
    "CELERY_APP": None,
    "CELERY_QUEUE": None,
    # Django's task framework: the TASKS alias and the queue name wake-ups go to.
    "DJANGO_TASKS_BACKEND": "default",
    "DJANGO_TASKS_QUEUE": "default",
    # Priorities of live wake-ups (drains, the sweep) and backfill ones (chunks,
    # delayed retries) on Celery and django.tasks; None: the backend's default
    # (django.tasks: 10 and 0 where the backend supports priorities; Celery: none).
    "TASK_PRIORITIES": {"live": None, "backfill": None},
    # Celery and django.tasks cannot be asked about one task: a wake-up not started
    # this many seconds after its time is taken as lost and its jobs handed over again.
    "LOST_WAKEUP_AFTER": 3600,
    # Where breakers, rate limits, concurrency caps, retry limits and marks live:
    # "auto" (Redis when configured: the RQ queue's or REDIS_URL; else the cache),
    # "redis" or "cache" (Django's cache SHARED_STATE_CACHE).
    "SHARED_STATE": "auto",
    "REDIS_URL": None,
    "SHARED_STATE_CACHE": "default",
    # Attempts per job, the first included, before it fails for good.
    "MAX_ATTEMPTS": 3,
    # Seconds a job may run before it is taken as lost (worker died) and requeued.
    "JOB_TIMEOUT": 120,
    # Retry n waits a random time up to min(RETRY_BACKOFF * 2**n, RETRY_BACKOFF_MAX).
    "RETRY_BACKOFF": 2,
    "RETRY_BACKOFF_MAX": 300,
    # Longest Retry-After (seconds) a job honours before taking the capped backoff.
    "RETRY_AFTER_MAX": 600,
    # Seconds between the worker's periodic sweeps (requeue pending, recover lost jobs).
    "SWEEP_INTERVAL": 60,
    # A pending job older than this (seconds) is taken as never enqueued.
    "PENDING_GRACE": 30,
    # A job pending or queued longer than this (seconds) is stuck: ai_status names it,
    # the admin filters it, the sweep logs it once with its reason (no silent waits).
    "STUCK_AFTER": 300,
    # Provider batch APIs (ai_regenerate --batch, docs/batches.md): seconds between
    # polls of open batches (0: only ai_requeue polls), and requests per batch.
    "BATCH_POLL_INTERVAL": 60,
    "BATCH_MAX_REQUESTS": 10_000,
    # Dotted path: callable(instance) -> str | None.
    "TENANT_RESOLVER": None,
    # -- where it runs (docs/deployment.md) --
    # Dotted path to a dispatch.context.ContextHook subclass: what a worker must restore
    # to see a job's data in multi-tenancy schemes the app does not detect itself
    # (django-tenants and the database alias are carried without it).
    "JOB_CONTEXT": None,
    # Database aliases holding AIJob tables, which the sweep, the batch poll and
    # ai_status visit. None: every alias the router writes AIJob rows to.
    "JOB_DATABASES": None,
    # Prices come from genai-prices; these override or add models, USD per 1M tokens:
    # {"model": {"input": ..., "output": ..., "cached_input": ..., "cache_write": ...,
    # "cache_write_1h": ...}}. A gateway's served names: PROVIDERS[name]["PRICE_AS"].
    "PRICING": {},
    # Fractions of a quota's limit at which quota_threshold_reached fires, once per
    # period each (docs/quotas.md).
    "QUOTA_ALERT_AT": [0.8, 1.0],
    # Fernet key (or list of keys, newest first) encrypting ProviderCredential.api_key.
    "ENCRYPTION_KEY": None,
    # Seconds a generated answer is reused for an identical request (0: off).
    # A field's cache_ttl overrides it.
    "CACHE_TTL": 0,
    # Backfills (ai_regenerate, regenerate() on a queryset) enqueue their jobs in
    # chunks of CHUNK_SIZE; a chunk job makes up to CONCURRENCY provider calls at once.
    "CHUNK_SIZE": 100,
    "CONCURRENCY": 16,
    # Live saves: one drain job runs many AIJobs at once (CONCURRENCY calls in flight)
    # and stops taking new ones after DRAIN_SECONDS, handing on to a fresh drain.
    "DRAIN_SECONDS": 300,
    # Seconds a drain that has emptied the queue stays, taking the jobs of new commits
    # as they come (woken through Redis: RQ only), before it exits (0: at once). A burst
    # worker and a warm shutdown wait it out.
    "DRAIN_LINGER": 2,
    # Seconds a job over its tenant's max_concurrent_jobs waits before trying again.
    "CONCURRENCY_RETRY_DELAY": 5,
    # Mark the system message for Anthropic's prompt cache (OpenAI caches the
    # shared prefix on its own: the system message always comes first).
    "PROMPT_CACHING": True,
    # Store the rendered prompt on AIJob (handy in the admin; off for sensitive data).
    "STORE_PROMPTS": True,
    # Default max_input_chars for fields that set none (None: no limit).
    "MAX_INPUT_CHARS": 20_000,
    # Default max_tokens for fields that set none.
    "MAX_TOKENS": 1024,
    # Dotted path: callable(user) -> str | None confining a user to one tenant in the
    # JSON API and the admin (None: superusers see all, others nothing). docs/api.md
    "TENANT_FOR_USER": None,
    # URL prefixes a tenant-bound user may give as a credential's base URL (none: such
    # users cannot set one). Checked in the admin and on every call. docs/security.md
    "TENANT_BASE_URLS": [],
    # ai_cleanup keeps, for each existing row and AI field, the newest this many jobs
    # that wrote a value (its history, api.history; at least 1), whatever their age.
    "HISTORY_KEEP": 10,
    # Jobs per page of the JSON API's job list (?page_size= may ask for up to 500).
    "API_PAGE_SIZE": 50,
    # -- streaming and observability (docs/streaming.md, docs/observability.md) --
    # Seconds between writes of a streamed answer's partial text to AIJob.partial_output.
    "STREAM_SAVE_INTERVAL": 0.5,
    # Prometheus metrics, when prometheus_client is installed (the "prometheus" extra).
    "METRICS": True,
    # -- reliability (docs/reliability.md) --
    # Routes tried when the primary's circuit is open or its last attempt failed:
    # [("anthropic", "claude-haiku-4-5"), "azure", ...] (a bare name: its DEFAULT_MODEL).
    # A field's fallback= overrides it.
    "FALLBACK": [],
    # Retryable failures of one provider+model, with no success between them, within
    # CIRCUIT_WINDOW seconds that open its circuit (0: no circuit breaker).
    "CIRCUIT_FAILURES": 5,
    "CIRCUIT_WINDOW": 60,
    # Seconds an open circuit refuses calls before letting one probe through.
    "CIRCUIT_COOLDOWN": 30,
    # Seconds a job may wait for open circuits without using attempts; after that,
    # each encounter counts as a failed attempt (circuit_open when they run out).
    "CIRCUIT_MAX_WAIT": 900,
    # Per provider, shared by all workers: {"openai": {"RPM": 500, "TPM": 200_000}}.
    # A job over a limit is delayed, not failed, and keeps its attempts.
    "RATE_LIMITS": {},
    # Dotted path: callable(text, direction) checking "input" and "output"; it
    # returns a reason (or raises ModerationRefused) to refuse with bad_request.
    # "openai" uses OpenAI's moderation endpoint. None: no moderation.
    "MODERATION": None,
    # Token counting for MAX_INPUT_TOKENS and rate limits: "auto" (tiktoken when
    # installed, else about 4 characters a token), "chars", or a dotted path:
    # callable(text, model) -> int.
    "TOKENIZER": "auto",
    # Default max_input_tokens for fields that set none (None: no token limit).
    "MAX_INPUT_TOKENS": None,
    # A choice answer this similar (difflib ratio, 0-1) to exactly one choice is taken
    # as that choice; None: exact matches only.
    "CHOICE_MATCH_CUTOFF": 0.8,
    # One extra call for an invalid JSON answer (with the validation error) or a
    # truncated JSON/choice answer (with twice the max_tokens). False: fail at once.
    "OUTPUT_REPAIR": True,
    # -- limits on untrusted input (docs/security.md) --
    # A longer provider answer, or JSON nested deeper, ends the job invalid_output.
    "MAX_OUTPUT_CHARS": 100_000,
    "MAX_OUTPUT_DEPTH": 64,
    # Manual retries (JSON API, admin action) of one job: seconds between two, and
    # at most this many in an hour (0: no limit).
    "RETRY_COOLDOWN": 10,
    "MAX_RETRIES_PER_HOUR": 10,
    # -- PII redaction (redact_pii=, docs/tenants.md#privacy) --
    # Regions (ISO 3166) whose national phone formats are recognised; numbers
    # written with +country code are found whatever the region.
    "PII_PHONE_REGIONS": ["US"],
    # The optional Presidio backend (names, places): a dotted path to a callable
    # returning a presidio_analyzer.AnalyzerEngine (None: AnalyzerEngine(), which
    # loads spaCy's en_core_web_lg), the language it analyses, and the lowest
    # score a finding needs to be masked.
    "PII_PRESIDIO_ANALYZER": None,
    "PII_PRESIDIO_LANGUAGE": "en",
    "PII_SCORE_THRESHOLD": 0.5,
    # -- hosted tools and file inputs (docs/providers.md, docs/fields.md) --
    # USD per use of a hosted tool (OpenAI list prices); money/tool_fees.py.
    "TOOL_PRICING": {"web_search": "0.01", "file_search": "0.0025", "code_interpreter": "0.03"},
    # A field's inputs=[...] file larger than this (bytes) fails the job with bad_request.
    "INPUT_MAX_BYTES": 20 * 1024 * 1024,
    # An image with more pixels (width x height) fails the job with bad_request.
    "INPUT_MAX_PIXELS": 40_000_000,
    # Content types a file input may have, detected from its first bytes.
    "INPUT_CONTENT_TYPES": [
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "application/pdf",
    ],
}


# The keys a PROVIDERS entry may hold; any other is a check error (declare/checks.py).
# docs/settings.md#providers-entries documents each (a test keeps the two equal).
PROVIDER_KEYS: frozenset[str] = frozenset(
    {
        "API_KEY",
        "BASE_URL",
        "TIMEOUT",
        "DEFAULT_MODEL",
        "API_VERSION",  # azure
        "API",  # openai: "chat" (the default) or "responses"
        "MAX_TOKENS_PARAM",  # OpenAI-compatible servers that want "max_tokens"
        "IDEMPOTENCY_HEADER",
        "MODERATION_MODEL",  # openai, for MODERATION = "openai"
        "PRICE_AS",  # the priced model a gateway's served name is (docs/quotas.md)
    }
)


def ai_settings() -> dict[str, Any]:
    """Return the merged settings; a fresh read, so ``override_settings`` applies."""
    user = getattr(settings, "AI_FIELDS", None) or {}
    return {**DEFAULTS, **user}


def get_setting(name: str) -> Any:
    return ai_settings()[name]


def provider_settings(provider: str) -> dict[str, Any]:
    return dict(get_setting("PROVIDERS").get(provider) or {})


__all__ = [
    "get_setting",
]
