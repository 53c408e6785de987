"""The shared state in Django's cache (``SHARED_STATE = "cache"``) behaves as in Redis:
the same behavioural tests of the circuit breaker, the rate limits, the tenants'
concurrency cap and the manual-retry limits run here against the cache store (their
modules run them against Redis). The local-memory cache stands in for one process;
the database cache for a deployment."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import caches

from django_ai_fields.calling import breaker
from django_ai_fields.shared_state import store
from django_ai_fields.shared_state.cache_store import CacheState
from django_ai_fields.tenants import concurrency

# The same tests, collected again in this module (the autouse fixture below switches
# the store): circuit breaker, rate limits, manual retries, concurrency cap.
from tests.jobs.test_reliability import (  # noqa: F401
    test_a_probe_job_closes_the_circuit_and_jobs_flow_again,
    test_a_probe_that_never_reports_is_taken_over_after_its_ttl,
    test_a_success_between_failures_resets_the_count,
    test_after_circuit_max_wait_an_open_circuit_uses_attempts_then_fails,
    test_an_unused_probe_is_released_for_the_next_caller,
    test_circuits_show_in_the_diagnostics_view,
    test_half_open_lets_exactly_one_probe_through_among_concurrent_callers,
    test_jobs_over_the_rate_limit_are_delayed_not_failed,
    test_only_retryable_failures_count_towards_opening,
    test_the_circuit_opens_after_n_failures_and_defers_jobs_without_an_attempt,
    test_the_probe_decides_success_closes_failure_reopens,
    test_the_rate_limit_is_atomic_across_concurrent_workers,
    test_the_tokens_per_minute_limit_counts_prompt_and_max_tokens,
)
from tests.tenants.test_security import (  # noqa: F401
    test_a_second_manual_retry_within_the_cooldown_is_refused,
    test_manual_retries_of_one_job_are_bounded_with_a_429,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True, params=["default", "shared"])
def cache_store(request: Any, settings: Any) -> Iterator[str]:
    """Every test here on the cache store: local memory ("default"), then the
    database cache ("shared")."""
    settings.AI_FIELDS = {
        **settings.AI_FIELDS,
        "SHARED_STATE": "cache",
        "SHARED_STATE_CACHE": request.param,
    }
    caches[request.param].clear()
    assert isinstance(store(), CacheState)
    yield request.param
    caches[request.param].clear()


def test_the_store_says_how_far_it_is_shared(cache_store: str) -> None:
    assert store().scope == ("process" if cache_store == "default" else "deployment")


def test_marks_are_set_once_and_released_only_by_their_owner() -> None:
    state = store()
    assert state.add("mark", "drain-1", 5)
    assert not state.add("mark", "drain-2", 5)
    assert state.get("mark") == "drain-1"
    assert not state.delete_if("mark", "drain-2")
    assert state.replace("mark", "drain-3", 5)
    assert state.delete_if("mark", "drain-3")
    assert state.get("mark") is None
    assert not state.replace("mark", "drain-4", 5)


def test_the_concurrency_cap_holds_among_threads() -> None:
    """Forty jobs of one tenant race for three slots: three get one."""
    holders: list[int] = []
    lock = threading.Lock()

    def acquire(job_id: int) -> None:
        if concurrency.acquire("acme", job_id, 3):
            with lock:
                holders.append(job_id)

    threads = [threading.Thread(target=acquire, args=(n,)) for n in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(holders) == 3
    assert not concurrency.acquire("acme", 100, 3)
    concurrency.release("acme", holders[0])  # one job ends: its slot is free again
    assert concurrency.acquire("acme", 100, 3)


def test_a_circuit_left_open_reads_back_as_open() -> None:
    from tests.jobs.test_reliability import UNAVAILABLE

    for _ in range(5):
        breaker.record(breaker.allow("openai", "m", 30), UNAVAILABLE)
    assert breaker.states()["circuits"][0]["state"] == breaker.OPEN
    breaker.reset("openai", "m")
    assert breaker.state_of("openai", "m")["state"] == breaker.CLOSED
