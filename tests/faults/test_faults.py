"""The fault suite: every scenario against real Redis, PostgreSQL and worker processes.

``pytest -m faults tests/faults`` (the default run leaves it out). Each scenario runs
in its own process (tests/faults/scenario.py); here we hold its figures to the bar:
every job finished, none lost, none written twice.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.faults.runner import run_scenario
from tests.faults.scenario import SCENARIOS

pytestmark = pytest.mark.faults

# What each fault must visibly have done, so a scenario cannot pass by injecting nothing.
EVIDENCE = {
    "429_storm": lambda r: r["injected"].get("429", 0) >= 5 and r["circuit_opened"] >= 1,
    "500_bursts": lambda r: r["injected"].get("500", 0) >= 5 and r["max_attempts"] >= 2,
    "timeouts": lambda r: r["injected"].get("delay", 0) >= 10 and r["max_attempts"] >= 2,
    "connection_resets": lambda r: r["injected"].get("reset", 0) >= 10,
    "redis_restart": lambda r: any("restarted, empty" in e for e in r["events"]),
    "worker_kill_loop": lambda r: r["worker_kills"] >= 3,
    "postgres_restart": lambda r: any("started again" in e for e in r["events"]),
    "racing_rows": lambda r: r["jobs"] < r["rows"] * 10 and r["rows"] == 50,
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario(name: str, cluster: Any, fault_results: list[dict[str, Any]]) -> None:
    result = run_scenario(name, cluster)
    fault_results.append(result)
    if "skipped" in result:
        pytest.skip(result["skipped"])
    assert result["settled"], f"jobs open at the deadline: {result['stuck']}, RQ: {result['rq']}"
    assert result["lost"] == 0, result
    assert result["double_written"] == 0, result
    finished = result["succeeded"] + result["superseded"] + sum(result["failed"].values())
    assert finished == result["jobs"]
    assert result["writes_logged"] <= result["succeeded"]  # one write per succeeded job
    assert EVIDENCE[SCENARIOS[name].kind](result), f"the fault left no trace: {result}"
