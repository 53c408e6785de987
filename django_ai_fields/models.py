"""Database models: the job outbox (AIJob), the per-call log (AIUsage), quotas,
tenant credentials and policies.

Status, Phase and ErrorCode live in codes.py and are re-exported here."""

from __future__ import annotations

from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import models
from django.db.models import Q
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

# The vocabulary lives at the bottom of the package (codes.py); re-exported here.
from . import row_keys
from .codes import (
    FIELD_FUNCTION,
    FINISHED_STATUSES,
    OPEN_STATUSES,
    UNFINISHED_STATUSES,
    ErrorCode,
    Phase,
    Status,
)
from .databases import AppManager, JobManager, current_schema
from .encrypted import EncryptedTextField, UnreadableSecret
from .privacy.redaction import ENTITY_TYPES, unknown_types

# AIJob.triggered_by of the finished job recording a person's edit of an AI field,
# and of one recording a revert to an earlier value (api.revert); both are hand edits:
# kept by keep_manual_edits, never stale (docs/values.md).
HAND_EDIT = "manual"
REVERT = "revert"
HAND_WRITTEN = (HAND_EDIT, REVERT)

__all__ = [
    "FINISHED_STATUSES",
    "HAND_EDIT",
    "HAND_WRITTEN",
    "OPEN_STATUSES",
    "REVERT",
    "UNFINISHED_STATUSES",
    "AIJob",
    "AIJobDaily",
    "AIProposal",
    "AIUsage",
    "AIUsageDaily",
    "CallState",
    "ErrorCode",
    "Phase",
    "ProviderBatch",
    "ProviderCredential",
    "Quota",
    "QuotaKind",
    "QuotaPeriod",
    "QuotaUsage",
    "Status",
    "TenantPolicy",
]


class AIJob(models.Model):
    """One requested generation; also the outbox row the RQ job points at."""

    content_type = models.ForeignKey(
        ContentType, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    object_id = models.CharField(_("object id"), max_length=255, blank=True, default="")
    field_name = models.CharField(_("field"), max_length=100, blank=True, default="")
    function = models.CharField(_("AI function"), max_length=100, default=FIELD_FUNCTION)
    payload = models.JSONField(_("payload"), null=True, blank=True)
    tenant = models.CharField(_("tenant"), max_length=100, blank=True, default="")

    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.PENDING
    )
    phase = models.CharField(_("phase"), max_length=16, choices=Phase.choices, default=Phase.INIT)
    progress = models.PositiveSmallIntegerField(_("progress"), default=0)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    force = models.BooleanField(_("bypass result cache"), default=False)
    triggered_by = models.CharField(_("triggered by"), max_length=32, default="save")

    input_hash = models.CharField(_("input hash"), max_length=64, blank=True, default="")
    # The field definition the answer was made under (declare/definition.py): a value
    # whose job holds another one than the field's now is stale. "" : none recorded.
    definition_hash = models.CharField(
        _("definition hash"), max_length=64, blank=True, default="", editable=False
    )
    provider = models.CharField(_("provider"), max_length=64, blank=True, default="")
    model = models.CharField(_("model"), max_length=100, blank=True, default="")
    prompt = models.TextField(_("rendered prompt"), blank=True, default="")
    output = models.JSONField(_("output"), null=True, blank=True)
    # A streamed answer's text so far, while the job runs; cleared when it finishes.
    partial_output = models.TextField(_("partial output"), blank=True, default="")
    error_code = models.CharField(
        _("error code"), max_length=32, choices=ErrorCode.choices, blank=True, default=""
    )
    error = models.TextField(_("error"), blank=True, default="")
    # Who accepted or rejected the proposal (review=True), and when.
    reviewed_by = models.CharField(_("reviewed by"), max_length=150, blank=True, default="")
    reviewed_at = models.DateTimeField(_("reviewed"), null=True, blank=True)

    input_tokens = models.PositiveIntegerField(_("input tokens"), default=0)
    output_tokens = models.PositiveIntegerField(_("output tokens"), default=0)
    cost_usd = models.DecimalField(_("cost (USD)"), max_digits=14, decimal_places=6, default=0)

    # What the job did: [{"phase", "message", "at", "attempt", tokens/cost...}], newest last.
    steps = models.JSONField(_("steps"), default=list, blank=True, editable=False)
    # Result cache key (provider, model, parameters, prompt, tenant); "" when not cached.
    cache_key = models.CharField(max_length=64, blank=True, default="", editable=False)
    # Quota units this run holds: [[quota_usage_id, units], ...]; released if the run dies.
    reservations = models.JSONField(default=list, blank=True, editable=False)
    # A fresh token per run: only the run holding it may finish the job.
    run_token = models.CharField(max_length=32, blank=True, default="", editable=False)
    rq_job_id = models.CharField(max_length=64, blank=True, default="", editable=False)
    # The provider batch this job's request went into; "" once its result is handled.
    batch_id = models.CharField(_("provider batch"), max_length=100, blank=True, default="")
    # Where the job runs (docs/deployment.md): its row's django-tenants schema ("" without
    # django-tenants), and what AI_FIELDS["JOB_CONTEXT"] captured at the save.
    schema = models.CharField(
        _("schema"), max_length=63, blank=True, default=current_schema, editable=False
    )
    context = models.JSONField(_("job context"), default=dict, blank=True, editable=False)
    # Counted in AIJobDaily under its status (finished jobs; dispatch/tally.py).
    tallied = models.BooleanField(default=False, db_default=False, editable=False)

    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    enqueued_at = models.DateTimeField(_("enqueued"), null=True, blank=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    # When the sweep logged this job as stuck (jobs/stuck.py): once per wait.
    stuck_reported_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = JobManager()

    class Meta:
        verbose_name = _("AI job")
        verbose_name_plural = _("AI jobs")
        ordering = ["-id"]
        indexes = [
            models.Index(
                fields=["content_type", "object_id", "field_name"], name="aijob_target_idx"
            ),
            models.Index(fields=["status", "updated_at"], name="aijob_status_idx"),
            models.Index(fields=["tenant", "created_at"], name="aijob_tenant_idx"),
            models.Index(fields=["cache_key", "finished_at"], name="aijob_cache_idx"),
            models.Index(fields=["batch_id"], name="aijob_batch_idx", condition=~Q(batch_id="")),
            models.Index(fields=["tallied"], name="aijob_tallied_idx"),
        ]
        constraints = [
            # At most one open job per row and field: later saves reuse it (coalescing).
            # A job waiting in a provider batch is not reused: a save while the batch
            # runs starts a new job, and the batch's answer ends superseded.
            # The schema is part of a row's identity in a job table shared by schemas.
            models.UniqueConstraint(
                fields=["content_type", "object_id", "field_name", "schema"],
                condition=Q(status__in=["pending", "queued"], function=FIELD_FUNCTION)
                & ~Q(phase="BATCH"),
                name="aijob_one_open_per_field",
            ),
        ]

    def __str__(self) -> str:
        target = f"{self.object_id}.{self.field_name}" if self.field_name else self.function
        return f"AIJob #{self.pk} {target} [{self.status}]"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def target_label(self) -> str:
        """``app_label.model:pk.field`` for field jobs (logs, metrics), "" for others."""
        if self.content_type_id is None:
            return ""
        loaded = self._state.fields_cache.get("content_type")  # with the job (a lease)
        if loaded is not None:
            ct = loaded
        else:  # content type ids are the job's database's own (a job saved with using())
            ct = ContentType.objects.db_manager(self._state.db).get_for_id(self.content_type_id)
        return f"{ct.app_label}.{ct.model}:{self.object_id}.{self.field_name}"

    def get_target(self) -> models.Model | None:
        """The row this job writes to, or None if it was deleted."""
        if self.content_type is None:
            return None
        model = self.content_type.model_class()
        if model is None:
            return None
        try:
            lookup = row_keys.pk_filter(model, self.object_id)
        except ValueError:  # names no row of the model (its key changed shape)
            return None
        # The base manager: a default manager hiding rows (archived...) hides no target.
        return model._base_manager.db_manager(self._state.db).filter(lookup).first()


class AIProposal(AIJob):
    """The jobs whose answer waits for a person (``in_review``): the admin's
    *Review AI proposals* page (admin/review.py), with its own permissions."""

    class Meta:
        proxy = True
        verbose_name = _("AI proposal")
        verbose_name_plural = _("AI proposals")


class CallState(models.TextChoices):
    """Where a logged provider call stands. A call is logged ``sent`` before its
    request leaves, at the worst case its quota reservation holds, and ``settled``
    with what it used once its answer (or its error) is back. A call whose work
    horse died in flight stays ``sent``: counted at its worst case, never less."""

    SENT = "sent", _("sent, no answer")
    SETTLED = "settled", _("settled")


class AIUsage(models.Model):
    """One provider call (or result-cache hit), success or failure."""

    tenant = models.CharField(_("tenant"), max_length=100, blank=True, default="")
    job = models.ForeignKey(
        AIJob, on_delete=models.SET_NULL, null=True, blank=True, related_name="usages"
    )
    provider = models.CharField(_("provider"), max_length=64)
    # The model the app asked for, and priced. The name the provider's answer gives
    # is kept beside it, untrusted: shown and exported, never priced or grouped by.
    model = models.CharField(_("model"), max_length=100)
    reported_model = models.CharField(
        _("model (as reported)"), max_length=100, blank=True, default=""
    )
    input_tokens = models.PositiveIntegerField(_("input tokens"), default=0)
    output_tokens = models.PositiveIntegerField(_("output tokens"), default=0)
    cached_tokens = models.PositiveIntegerField(_("cached tokens"), default=0)
    # Input tokens written to the prompt cache (Anthropic), and output tokens spent
    # on reasoning (OpenAI; a part of output_tokens).
    cache_write_tokens = models.PositiveIntegerField(_("cache write tokens"), default=0)
    reasoning_tokens = models.PositiveIntegerField(_("reasoning tokens"), default=0)
    # NULL: the model has no known price (not "free"); see docs/quotas.md.
    cost_usd = models.DecimalField(
        _("cost (USD)"), max_digits=14, decimal_places=6, null=True, blank=True, default=0
    )
    # What a gateway (OpenRouter's usage.cost, LiteLLM's header) says it charged.
    gateway_cost_usd = models.DecimalField(
        _("gateway cost (USD)"), max_digits=18, decimal_places=10, null=True, blank=True
    )
    # The model whose price was used, when PRICE_AS mapped the served name to another.
    priced_as = models.CharField(_("priced as"), max_length=100, blank=True, default="")
    # Billable hosted tool uses ({"web_search": 2}) and their fees, a part of cost_usd.
    tool_calls = models.JSONField(_("hosted tool uses"), default=dict, blank=True)
    tool_cost_usd = models.DecimalField(
        _("tool fees (USD)"), max_digits=14, decimal_places=6, default=0
    )
    duration_ms = models.PositiveIntegerField(_("duration (ms)"), default=0)
    success = models.BooleanField(_("success"), default=True)
    cache_hit = models.BooleanField(_("result cache hit"), default=False)
    error_code = models.CharField(
        _("error code"), max_length=32, choices=ErrorCode.choices, blank=True, default=""
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True, db_index=True)
    call_state = models.CharField(
        _("call state"),
        max_length=8,
        choices=CallState.choices,
        default=CallState.SETTLED,
        db_default=CallState.SETTLED,
    )
    # True once the row is counted in AIUsageDaily: at once when the app logs a call;
    # a row written any other way is rolled up by the sweep (money/usage_rollup.py).
    rolled_up = models.BooleanField(default=False, db_default=False, editable=False)

    objects = AppManager()

    class Meta:
        verbose_name = _("AI usage")
        verbose_name_plural = _("AI usage")
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["tenant", "created_at"], name="aiusage_tenant_idx"),
            # Finds the few rows not rolled up yet (a boolean B-tree stays small).
            models.Index(fields=["rolled_up"], name="aiusage_rolled_up_idx"),
            # The few calls never answered (their worker died in flight).
            models.Index(
                fields=["call_state"],
                condition=Q(call_state=CallState.SENT),
                name="aiusage_unsettled_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider}/{self.model} {self.input_tokens}+{self.output_tokens} tokens"


class AIUsageDaily(models.Model):
    """AIUsage summed per day (in TIME_ZONE) and per kind of call: what every total,
    chart and report reads, so none of them scans the call log. Kept exact in the
    transaction that logs each call (docs/performance.md#usage-roll-up)."""

    day = models.DateField(_("day"))
    tenant = models.CharField(_("tenant"), max_length=100, blank=True, default="")
    provider = models.CharField(_("provider"), max_length=64)
    model = models.CharField(_("model"), max_length=100)
    success = models.BooleanField(_("success"))
    cache_hit = models.BooleanField(_("result cache hit"))
    error_code = models.CharField(_("error code"), max_length=32, blank=True, default="")

    calls = models.BigIntegerField(_("calls"), default=0)
    unknown_cost_calls = models.BigIntegerField(_("calls of unknown cost"), default=0)
    input_tokens = models.BigIntegerField(_("input tokens"), default=0)
    output_tokens = models.BigIntegerField(_("output tokens"), default=0)
    cached_tokens = models.BigIntegerField(_("cached tokens"), default=0)
    cache_write_tokens = models.BigIntegerField(_("cache write tokens"), default=0)
    reasoning_tokens = models.BigIntegerField(_("reasoning tokens"), default=0)
    # Integer micro-dollars (AIUsage.cost_usd has six decimals): sums stay exact.
    cost_micro = models.BigIntegerField(_("cost (micro-USD)"), default=0)
    tool_cost_micro = models.BigIntegerField(_("tool fees (micro-USD)"), default=0)
    # Gateway-reported cost in units of 1e-10 USD (the scale of AIUsage.gateway_cost_usd),
    # and how many calls reported one (none: the total is unknown, not zero).
    gateway_cost_calls = models.BigIntegerField(_("calls with a gateway cost"), default=0)
    gateway_cost_units = models.BigIntegerField(_("gateway cost (1e-10 USD)"), default=0)
    duration_ms = models.BigIntegerField(_("duration (ms, summed)"), default=0)
    duration_max_ms = models.BigIntegerField(_("longest duration (ms)"), default=0, db_default=0)
    # And a histogram of the durations: one column per bucket (LATENCY_COLUMNS, added
    # below), the calls whose duration_ms falls in it; approximate percentiles.

    objects = AppManager()

    class Meta:
        verbose_name = _("AI usage per day")
        verbose_name_plural = _("AI usage per day")
        ordering = ["-day"]
        indexes = [models.Index(fields=["tenant", "day"], name="aiusagedaily_tenant_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["day", "tenant", "provider", "model", "success", "cache_hit", "error_code"],
                name="aiusagedaily_unique",
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.tenant or '-'} {self.provider}/{self.model}: {self.calls} calls"


def _latency_bounds() -> tuple[int, ...]:
    """Lower bounds (ms) of the duration histogram's buckets: [0, 16), then four buckets
    per doubling up to 2**20 ms (17.5 minutes), then [2**20, infinity). A bucket's
    middle is within 10% of any duration in it (observability/analytics.py)."""
    return (0, *sorted({round(16 * 2 ** (step / 4)) for step in range(65)}))


LATENCY_BOUNDS = _latency_bounds()
LATENCY_COLUMNS = tuple(f"ms_{bound}" for bound in LATENCY_BOUNDS)
for _bound, _column in zip(LATENCY_BOUNDS, LATENCY_COLUMNS, strict=True):
    models.BigIntegerField(
        format_lazy(_("calls from {bound} ms"), bound=_bound), default=0, db_default=0
    ).contribute_to_class(AIUsageDaily, _column)
del _bound, _column


class AIJobDaily(models.Model):
    """Finished jobs counted per day of their creation (in TIME_ZONE), tenant, status
    and error code: what ``analytics/performance/`` reads instead of the job table.
    Kept exact by dispatch/tally.py (docs/performance.md#finished-jobs-tallied)."""

    day = models.DateField(_("day"))
    tenant = models.CharField(_("tenant"), max_length=100, blank=True, default="")
    status = models.CharField(_("status"), max_length=16)
    error_code = models.CharField(_("error code"), max_length=32, blank=True, default="")
    jobs = models.BigIntegerField(_("jobs"), default=0)

    objects = AppManager()

    class Meta:
        verbose_name = _("AI jobs per day")
        verbose_name_plural = _("AI jobs per day")
        ordering = ["-day"]
        constraints = [
            models.UniqueConstraint(
                fields=["day", "tenant", "status", "error_code"], name="aijobdaily_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.tenant or '-'} {self.status}: {self.jobs} jobs"


class QuotaKind(models.TextChoices):
    REQUESTS = "requests", _("Requests")
    TOKENS = "tokens", _("Tokens")
    COST_USD = "cost_usd", _("Cost (USD)")


class QuotaPeriod(models.TextChoices):
    DAY = "day", _("Day")
    MONTH = "month", _("Month")


class Quota(models.Model):
    """A limit per tenant and period; a blank tenant is the default for every tenant."""

    tenant = models.CharField(
        _("tenant"),
        max_length=100,
        blank=True,
        default="",
        help_text=_("Blank: the default for tenants that have no quota of this kind and period."),
    )
    kind = models.CharField(_("kind"), max_length=16, choices=QuotaKind.choices)
    period = models.CharField(_("period"), max_length=8, choices=QuotaPeriod.choices)
    limit = models.DecimalField(
        _("limit"),
        max_digits=16,
        decimal_places=6,
        default=0,
        help_text=_("Requests, tokens, or US dollars, by kind."),
    )
    is_unlimited = models.BooleanField(_("unlimited"), default=False)

    objects = AppManager()

    class Meta:
        verbose_name = _("quota")
        verbose_name_plural = _("quotas")
        ordering = ["tenant", "kind", "period"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "kind", "period"], name="quota_unique")
        ]

    def __str__(self) -> str:
        who = self.tenant or _("all tenants")
        limit = _("unlimited") if self.is_unlimited else self.limit
        return f"{who}: {limit} {self.kind} per {self.period}"


class QuotaUsage(models.Model):
    """What one tenant (or one field budget) used in one period, in integer units:
    requests, tokens, or micro-dollars. Changed only by conditional UPDATEs."""

    tenant = models.CharField(_("tenant"), max_length=100, blank=True, default="")
    # "" for tenant quotas; "budget:<app.Model.field>" for a field's budget_usd.
    scope = models.CharField(_("scope"), max_length=200, blank=True, default="")
    kind = models.CharField(_("kind"), max_length=16, choices=QuotaKind.choices)
    period = models.CharField(_("period"), max_length=8, choices=QuotaPeriod.choices)
    period_start = models.DateField(_("period start"))
    used = models.BigIntegerField(_("used"), default=0)
    # Highest QUOTA_ALERT_AT fraction (in per-mille) signalled this period: moved
    # up by a conditional UPDATE, so each crossing fires exactly once.
    alerted_permille = models.PositiveIntegerField(_("alerted at (per mille)"), default=0)

    objects = AppManager()

    class Meta:
        verbose_name = _("quota usage")
        verbose_name_plural = _("quota usage")
        ordering = ["-period_start", "tenant", "kind"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "scope", "kind", "period", "period_start"],
                name="quotausage_unique",
            )
        ]

    def __str__(self) -> str:
        return f"{self.tenant or '-'} {self.scope} {self.kind} {self.period_start}: {self.used}"


class ProviderCredential(models.Model):
    """A tenant's own provider key and server, used whole (docs/security.md): the key is
    plaintext in Python and a Fernet token in the database, on every write path."""

    tenant = models.CharField(_("tenant"), max_length=100)
    provider = models.CharField(_("provider"), max_length=64)
    api_key = EncryptedTextField(_("API key"), blank=True, default="")
    base_url = models.URLField(_("base URL"), blank=True, default="")
    # True when a tenant-bound user gave the current base_url: it is then checked
    # against TENANT_BASE_URLS on every call, not only in the form (docs/security.md).
    base_url_from_tenant = models.BooleanField(
        _("base URL given by the tenant"), default=False, editable=False
    )
    default_model = models.CharField(_("default model"), max_length=100, blank=True, default="")
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    objects = AppManager()

    class Meta:
        verbose_name = _("provider credential")
        verbose_name_plural = _("provider credentials")
        ordering = ["tenant", "provider"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "provider"], name="credential_unique")
        ]

    def __str__(self) -> str:
        return f"{self.tenant} / {self.provider}"

    @property
    def key_is_unreadable(self) -> bool:
        return isinstance(self.api_key, UnreadableSecret)

    def unreadable_key_message(self) -> str:
        cause = self.api_key.cause if isinstance(self.api_key, UnreadableSecret) else ""
        return str(
            _(
                "The API key stored in provider credential #%(pk)s (tenant %(tenant)r, "
                "provider %(provider)r) cannot be decrypted: %(cause)s."
            )
            % {"pk": self.pk, "tenant": self.tenant, "provider": self.provider, "cause": cause}
        )

    def set_api_key(self, plaintext: str) -> None:
        """Compatibility: the same as assigning ``api_key`` (encrypted when saved)."""
        self.api_key = plaintext or ""

    def get_api_key(self) -> str:
        """Compatibility: the plaintext key; ImproperlyConfigured if it cannot be read."""
        if self.key_is_unreadable:
            raise ImproperlyConfigured(self.unreadable_key_message())
        return str(self.api_key or "")


class TenantPolicy(models.Model):
    """Per-tenant switches: AI on/off, a cap on jobs running at once, PII redaction."""

    tenant = models.CharField(_("tenant"), max_length=100, unique=True)
    ai_enabled = models.BooleanField(_("AI enabled"), default=True)
    disabled_reason = models.CharField(_("reason when disabled"), max_length=200, blank=True)
    max_concurrent_jobs = models.PositiveIntegerField(
        _("max concurrent jobs"), null=True, blank=True, help_text=_("Blank: no cap.")
    )
    require_review = models.BooleanField(
        _("review AI values"),
        default=False,
        help_text=_(
            "Every AI value of this tenant waits for a person's accept before it is "
            "written, as with a field's review=True."
        ),
    )
    redact_pii = models.BooleanField(
        _("redact personal data"),
        default=False,
        help_text=_("Mask personal data in every prompt of this tenant before any call."),
    )
    pii_entity_types = models.JSONField(
        _("PII entity types"),
        default=list,
        blank=True,
        help_text=_(
            'A list such as ["email", "phone"]. Blank: every built-in type '
            "(email, phone, card, iban, ssn, ip)."
        ),
    )

    objects = AppManager()

    class Meta:
        verbose_name = _("tenant policy")
        verbose_name_plural = _("tenant policies")
        ordering = ["tenant"]

    def __str__(self) -> str:
        return self.tenant

    def clean(self) -> None:
        types = self.pii_entity_types
        if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
            raise ValidationError({"pii_entity_types": _("Give a list of entity type names.")})
        unknown = unknown_types(types)
        if unknown:
            message = _("Unknown entity type(s) %(unknown)s; known: %(known)s.") % {
                "unknown": ", ".join(unknown),
                "known": ", ".join(ENTITY_TYPES),
            }
            raise ValidationError({"pii_entity_types": message})


class ProviderBatch(models.Model):
    """A provider batch the app submitted (``ai_regenerate --batch``), with the
    credential it was submitted with: it is polled and read with exactly that one,
    never with whichever credential a tenant has now (docs/batches.md)."""

    batch_id = models.CharField(_("provider batch"), max_length=100, unique=True)
    provider = models.CharField(_("provider"), max_length=64)
    # True: the operator's settings (PROVIDERS); False: ``credential``, a tenant's row.
    uses_settings = models.BooleanField(_("operator's settings"))
    credential = models.ForeignKey(
        ProviderCredential, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # The base URL the batch went to; a tenant row pointing elsewhere now is refused.
    base_url = models.CharField(_("base URL"), max_length=500, blank=True, default="")
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("provider batch")
        verbose_name_plural = _("provider batches")

    def __str__(self) -> str:
        return f"{self.provider} batch {self.batch_id}"
