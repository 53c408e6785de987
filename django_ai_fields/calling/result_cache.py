"""The result cache: an identical request within the TTL reuses the stored answer.

"Identical" means same tenant, provider, model, parameters and rendered
prompt. Answers live on the succeeded AIJob rows themselves (``cache_key``),
so the cache needs no extra store and expires by ``finished_at``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from datetime import timedelta
from typing import Any

from django.utils import timezone

from ..models import AIJob, Status
from ..providers import CompletionRequest

MISS = object()


def cache_key(tenant: str, provider: str, request: CompletionRequest) -> str:
    payload = json.dumps([tenant, provider, asdict(request)], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def lookup(key: str, ttl: int) -> Any:
    """The newest answer stored under ``key`` within ``ttl`` seconds, or MISS."""
    since = timezone.now() - timedelta(seconds=ttl)
    row = (
        AIJob.objects.filter(cache_key=key, status=Status.SUCCEEDED, finished_at__gte=since)
        .order_by("-finished_at")
        .values_list("output", flat=True)[:1]
    )
    found = list(row)
    return found[0] if found else MISS
