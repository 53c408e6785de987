"""Which route answers a job: the primary provider+model, then its fallbacks,
each behind its circuit breaker and rate limit.

- A route whose circuit is open is skipped (the next fallback is tried); when
  every route is open the job is *deferred*: put back on the queue for when a
  circuit may close, without using an attempt (up to CIRCUIT_MAX_WAIT, then each
  encounter is a failed ``circuit_open`` attempt).
- A route over its rate limit defers the job the same way (never a failure).
- On the job's last attempt, a retryable failure of one route goes on to the
  next route at once ("exhausted"), instead of failing the job.
- Every call carries an idempotency key, stable across the job's attempts for the
  same request, where the provider's SDK can send one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import time
from collections.abc import Iterable
from dataclasses import asdict, replace
from typing import Any

from django.utils.translation import gettext as _

from ..conf import get_setting
from ..declare import tokens
from ..dispatch import transitions
from ..models import AIJob, ErrorCode
from ..providers import CompletionResponse, ProviderError, provider_class
from ..shared_state import store
from ..tenants.credentials import resolve_credentials
from . import breaker, ratelimit
from .pipeline import Pipeline, Prepared, call_provider

WAIT_KEY = "django_ai_fields:circuit-wait:{job}"
# A half-open circuit's probe usually answers within a second: look again soon.
PROBE_RECHECK = 2.0


class Deferred(Exception):
    """No route may be called now; run the job again after ``delay`` seconds."""

    def __init__(self, delay: float, code: str, message: str):
        super().__init__(message)
        self.delay = delay
        self.code = code
        self.message = message


class CircuitOpen(ProviderError):
    """Every route's circuit is open and the job has waited long enough: an attempt."""

    def __init__(self, message: str, retry_after: float):
        super().__init__(ErrorCode.CIRCUIT_OPEN, message, retry_after=retry_after)

    @property
    def retryable(self) -> bool:
        return True


def call(
    job: AIJob, prepared: Prepared, *, fallbacks: bool = True
) -> Pipeline[tuple[Prepared, CompletionResponse]]:
    """Call the first route that may be called; returns (its prepared request, the answer).
    Raises Deferred, QuotaRefused or ProviderError."""
    candidates = routes(job, prepared) if fallbacks else [prepared]
    last_attempt = job.attempts >= int(get_setting("MAX_ATTEMPTS"))
    circuit_waits: list[tuple[float, str]] = []
    failure: ProviderError | None = None
    for index, candidate in enumerate(candidates):
        permit = breaker.allow(candidate.provider, candidate.model, probe_ttl(candidate))
        if not permit.allowed:
            wait = permit.wait if permit.state == breaker.OPEN else min(permit.wait, PROBE_RECHECK)
            circuit_waits.append((wait, f"{candidate.provider}/{candidate.model}"))
            continue
        try:
            limit_rate(candidate)
            response = yield from call_provider(job, with_idempotency_key(job, candidate))
        except ProviderError as error:
            breaker.record(permit, error)
            if error.retryable and last_attempt and index + 1 < len(candidates):
                failure = error  # this route is exhausted for the job: try the next now
                continue
            raise
        except BaseException:
            breaker.release(permit)
            raise
        breaker.record(permit, None)
        if job.error_code == ErrorCode.CIRCUIT_OPEN:
            forget_wait(job)
        if (candidate.provider, candidate.model) != (job.provider, job.model):
            transitions.write(job, provider=candidate.provider, model=candidate.model)
        return candidate, response
    if failure is not None:
        raise failure
    raise circuit_wait(job, circuit_waits)


def routes(job: AIJob, prepared: Prepared) -> list[Prepared]:
    """The primary route, then each configured fallback (duplicates left out)."""
    found = [prepared]
    seen = {(prepared.provider, prepared.model)}
    for provider, model in fallback_entries(prepared.function.fallbacks()):
        config = resolve_credentials(provider, job.tenant or None)
        model = model or config.get("DEFAULT_MODEL") or get_setting("DEFAULT_MODEL")
        if (provider, model) in seen:
            continue
        seen.add((provider, model))
        request = replace(prepared.request, model=model)
        found.append(replace(prepared, provider=provider, config=config, request=request))
    return found


def fallback_entries(entries: Iterable[Any]) -> list[tuple[str, str | None]]:
    """Normalise ``["azure", ("anthropic", "claude-haiku-4-5"), ...]`` (lists too: JSON)."""
    normalised: list[tuple[str, str | None]] = []
    for entry in entries or ():
        if isinstance(entry, str):
            normalised.append((entry, None))
        else:
            provider, *rest = entry
            normalised.append((str(provider), str(rest[0]) if rest and rest[0] else None))
    return normalised


def probe_ttl(prepared: Prepared) -> float:
    """How long a half-open probe may take before another caller may probe."""
    return float(prepared.config.get("TIMEOUT") or 30) + 5


def limit_rate(prepared: Prepared) -> None:
    rpm, tpm = ratelimit.limits_for(prepared.provider)
    if not rpm and not tpm:
        return
    request = prepared.request
    demand = 0
    if tpm:  # counting tokens costs CPU (tiktoken): only when a token limit needs it
        demand = tokens.count(request.system + request.prompt, request.model) + request.max_tokens
    wait = ratelimit.acquire(prepared.provider, demand)
    if wait > 0:
        raise Deferred(
            wait + random.uniform(0, max(wait, 1.0)),
            ErrorCode.RATE_LIMITED,
            _("Over the rate limit of %(provider)s: waiting %(seconds).0f s.")
            % {"provider": prepared.provider, "seconds": wait},
        )


def circuit_wait(job: AIJob, waits: list[tuple[float, str]]) -> Exception:
    """Deferred while the job may still wait for a circuit, else a CircuitOpen attempt."""
    wait = min(seconds for seconds, _name in waits)
    names = ", ".join(n for _w, n in waits)
    message = _("Circuit open for %(routes)s: retrying in %(seconds).0f s.") % {
        "routes": names,
        "seconds": wait,
    }
    if waited_too_long(job):
        return CircuitOpen(message, retry_after=wait)
    spread = min(float(get_setting("CIRCUIT_COOLDOWN")), 10.0)
    return Deferred(wait + random.uniform(0, spread), ErrorCode.CIRCUIT_OPEN, message)


def waited_too_long(job: AIJob) -> bool:
    """Has the job been waiting for open circuits longer than CIRCUIT_MAX_WAIT?"""
    limit = float(get_setting("CIRCUIT_MAX_WAIT"))
    now = time.time()
    try:
        key = WAIT_KEY.format(job=job.pk)
        store().add(key, repr(now), int(limit) + 86400)
        first = float(store().get(key) or now)
    except Exception:  # the shared state is down: the breaker lets calls through anyway
        return limit <= 0
    return now - first >= limit


def forget_wait(job: AIJob) -> None:
    with contextlib.suppress(Exception):
        store().delete(WAIT_KEY.format(job=job.pk))


# -- idempotency ----------------------------------------------------------------------


def idempotency_header(prepared: Prepared) -> str | None:
    """``PROVIDERS[name]["IDEMPOTENCY_HEADER"]``, else the provider class's own."""
    if "IDEMPOTENCY_HEADER" in prepared.config:
        return prepared.config["IDEMPOTENCY_HEADER"] or None
    try:
        return provider_class(prepared.provider).idempotency_header
    except (ImportError, ValueError):
        return None


def idempotency_key(job: AIJob, prepared: Prepared) -> str:
    """Same job, same request: same key, on every attempt (a retry after a
    timeout is the same request). A changed prompt or model is a new request."""
    request = {k: v for k, v in asdict(prepared.request).items() if k != "options"}
    payload = json.dumps([job.pk, prepared.provider, request], sort_keys=True, default=str)
    return f"django-ai-fields-{job.pk}-{hashlib.sha256(payload.encode()).hexdigest()[:32]}"


def with_idempotency_key(job: AIJob, prepared: Prepared) -> Prepared:
    header = idempotency_header(prepared)
    if not header:
        return prepared
    options = dict(prepared.request.options)
    options["extra_headers"] = {
        **(options.get("extra_headers") or {}),
        header: idempotency_key(job, prepared),
    }
    return replace(prepared, request=replace(prepared.request, options=options))
